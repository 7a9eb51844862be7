// A CPU profile of one worker under load: `node bench/profile.mjs [this|reference|floor|floor-log|floor-do] [health|reject|accept|handled] [seconds]`
// (after `bash scripts/build.sh`). Starts the worker under `wrangler dev` on free loopback ports,
// attaches to its V8 inspector (the DevTools protocol wrangler exposes), records a sampling
// profile while autocannon sends the path's requests, and prints where the isolate's time went:
// the heaviest functions by self time, wasm functions by their names. Writes the raw profile to
// $PROFILE_OUT (a .cpuprofile DevTools opens) when set. Not a test.

import { createRequire } from 'node:module';
import { profileTargets, runLoad, startBenchWorker, stopAll } from './lib.mjs';

// `ws` comes with wrangler (miniflare's inspector proxy wants an Origin header, which Node's
// built-in WebSocket cannot set).
const WebSocket = createRequire(import.meta.url)('ws');

const [which = 'this', pathName = 'reject', secondsArg = '5'] = process.argv.slice(2);
const seconds = Number(secondsArg);

async function inspector(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = list.find((t) => t.webSocketDebuggerUrl) ?? list[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: 'http://127.0.0.1' } });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', reject, { once: true });
  });
  let id = 0;
  const pending = new Map();
  ws.addEventListener('message', (m) => {
    const msg = JSON.parse(m.data.toString());
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      const n = ++id;
      pending.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  return { send, close: () => ws.close() };
}

/** The source around a profile frame, to name minified and native callees. */
async function sourceAt(insp, frame) {
  if (!frame?.scriptId || frame.scriptId === '0') return '';
  const { result } = await insp.send('Debugger.getScriptSource', { scriptId: frame.scriptId });
  const lines = result?.scriptSource?.split('\n') ?? [];
  const text = [lines[frame.lineNumber]?.slice(Math.max(0, frame.columnNumber - 20)), ...lines.slice(frame.lineNumber + 1, frame.lineNumber + 3)].join(' ');
  return text.replace(/\s+/g, ' ').slice(0, 200);
}

/** Where the time of native functions without a name (the runtime's C++ APIs) is spent from. */
async function nativeCallers(insp, profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  profile.nodes.forEach((n) => (n.children ?? []).forEach((c) => parent.set(c, n.id)));
  const callers = new Map();
  profile.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    if (f.functionName !== '') return;
    // A native function has no url: name it by its caller; an anonymous script function by itself.
    const p = f.url === '' ? byId.get(parent.get(id))?.callFrame : f;
    if (!p) return;
    const key = `${p.scriptId}:${p.lineNumber}:${p.columnNumber}`;
    const entry = callers.get(key) ?? { frame: p, us: 0 };
    entry.us += profile.timeDeltas[i] ?? 0;
    callers.set(key, entry);
  });
  console.log('unnamed functions (a native one by the JavaScript that called it), with their source:');
  for (const { frame, us } of [...callers.values()].sort((a, b) => b.us - a.us).slice(0, 5)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms  ${frame.functionName || '(anonymous)'} ${frame.url.split('/').pop()}:${frame.lineNumber}: …${await sourceAt(insp, frame)}…`);
  }
}

function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url ? f.url.split('/').pop() : ''}`.trim();
    const us = dt[i] ?? 0;
    total += us;
    self.set(name, (self.get(name) ?? 0) + us);
  });
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
  const idle = (self.get('(idle)') ?? 0);
  const busy = total - idle;
  console.log(`samples: ${profile.samples.length}, wall ${(total / 1e6).toFixed(2)} s, busy (not idle) ${(busy / 1e6).toFixed(2)} s`);
  console.log('self time, share of busy time, function');
  for (const [name, us] of rows.slice(0, 40)) {
    if (name === '(idle)') continue;
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}`);
  }
}

try {
  const worker = await startBenchWorker(profileTargets[which]);
  const insp = await inspector(worker.inspectorPort);
  await runLoad(worker, pathName, 2); // warm-up, not recorded
  await insp.send('Profiler.enable');
  await insp.send('Profiler.setSamplingInterval', { interval: 100 });
  await insp.send('Profiler.start');
  const result = await runLoad(worker, pathName, seconds);
  const { result: { profile } } = await insp.send('Profiler.stop');
  await insp.send('Debugger.enable');
  console.log(`${which} ${pathName}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms`);
  if (process.env.PROFILE_OUT) (await import('node:fs')).writeFileSync(process.env.PROFILE_OUT, JSON.stringify(profile));
  summarise(profile);
  await nativeCallers(insp, profile);
  insp.close();
} finally {
  await stopAll();
}
