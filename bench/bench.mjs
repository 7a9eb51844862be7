// The benchmark (run it with `bash bench/run.sh`, which builds the release worker first).
//
// Starts the workers under the same local workerd (`wrangler dev --local`, 127.0.0.1, each on
// its own free port): this Rust worker, the reference JS worker of bench/reference (the
// official Stripe SDK, as Stripe's docs recommend for Workers, and a Durable Object per user
// for Identity events) and the floors: bench/floor (does nothing), bench/floor-log (one log
// line) and bench/floor-do (one Durable Object hop). Then measures four paths (health, reject,
// accept, handled) in one interleaved run (rounds of every path on every worker, the order of
// the workers rotating each round) with autocannon, and reports medians over the rounds, paired
// ratios, and the bundles (`wrangler deploy --dry-run --outdir`).
// Prints the report and writes it into bench/RESULTS.md (text after the notes marker is kept).
//
// Settings (environment): ROUNDS (5), SECONDS (3, per trial), CONNECTIONS (8), WARMUP_SECONDS (2),
// STARTUP_REPEATS (7: `wrangler check startup` of this worker and the reference, interleaved; 0 skips).
// Bounded: every trial stops after SECONDS, the whole run after about ten minutes.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { CONNECTIONS, PATHS, ROOT, RUN_WORKERS as WORKERS, WRANGLER, check, checkPassed, makeEvent, makeHandledEvent, measures, median, startWorker, trial } from './lib.mjs';

const RESULTS = path.join(ROOT, 'bench/RESULTS.md');
const NOTES_MARKER = '<!-- notes: kept by bench.mjs when it rewrites the figures above -->';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const SECONDS = Number(process.env.SECONDS ?? 3);
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 2);
// Startup: `wrangler check startup` this many times per worker (0 skips it).
const STARTUP_REPEATS = Number(process.env.STARTUP_REPEATS ?? 7);
const WRITE_RESULTS = process.env.WRITE_RESULTS !== '0';
// Issue 28's targets.
const BUNDLE_TARGET_KIB = 250;
const CPU_TARGET = 1.0;
// What each floor is a floor of, in the ratios.
const FLOORS = { floor: 'floor', 'floor-log': '(floor + log)', 'floor-do': '(floor + DO hop)' };

// ---------------------------------------------------------------- bundles

function gzipSize(file) {
  return zlib.gzipSync(readFileSync(file), { level: 9 }).length;
}

function dryRun(worker, dir) {
  const out = path.join(dir, `dist-${worker.name}`);
  const text = execFileSync(process.execPath, [WRANGLER, 'deploy', '--dry-run', '--config', worker.config, '--outdir', out], {
    cwd: ROOT,
    env: { ...process.env, SKIP_WORKER_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
  const upload = text.match(/Total Upload:\s*([\d.]+) KiB \/ gzip:\s*([\d.]+) KiB/);
  const files = readdirSync(out, { recursive: true })
    .map((f) => path.join(out, f))
    .filter((f) => statSync(f).isFile() && /\.(m?js|wasm)$/.test(f))
    .map((f) => ({ file: path.relative(out, f), raw: statSync(f).size, gzip: gzipSize(f) }));
  return {
    files,
    raw: files.reduce((n, f) => n + f.raw, 0),
    gzip: files.reduce((n, f) => n + f.gzip, 0),
    wranglerRawKiB: upload ? Number(upload[1]) : NaN,
    wranglerGzipKiB: upload ? Number(upload[2]) : NaN,
  };
}

// ---------------------------------------------------------------- startup

/**
 * One startup of `worker`, offline: `wrangler check startup` builds the bundle as `wrangler
 * deploy` would (the Rust worker's build/ as it is: SKIP_WORKER_BUILD), starts it in a local
 * workerd and records a CPU profile of the startup phase (the script's top level, for the
 * Rust worker compiling and instantiating the wasm). Its "Profile window" is the startup's
 * wall time; "Active" the sampled time that was not idle (a few samples of about 10 ms: coarse).
 */
function startupOnce(worker, dir, i) {
  const outfile = path.join(dir, `startup-${worker.name}-${i}.cpuprofile`);
  const text = execFileSync(process.execPath, [WRANGLER, 'check', 'startup', '--outfile', outfile], {
    // `check startup` takes no --config: it runs in the config's directory.
    cwd: path.dirname(path.resolve(ROOT, worker.config)),
    env: { ...process.env, SKIP_WORKER_BUILD: '1', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
  const window = text.match(/Profile window:\s*([\d.]+) ms/);
  const active = text.match(/Active:\s*([\d.]+) ms/);
  const profile = JSON.parse(readFileSync(outfile, 'utf8'));
  const top = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  profile.samples.forEach((id, k) => {
    const f = byId.get(id);
    const name = f.functionName || '(anonymous)';
    top.set(name, (top.get(name) ?? 0) + (profile.timeDeltas[k] ?? 0) / 1000);
  });
  return { window: window ? Number(window[1]) : NaN, active: active ? Number(active[1]) : NaN, top };
}

/** STARTUP_REPEATS startups of each worker, interleaved (this, the reference, …). */
function startups(workers, dir) {
  const runs = Object.fromEntries(workers.map((w) => [w.name, []]));
  for (let i = 0; i < STARTUP_REPEATS; i++) {
    for (const w of workers) {
      const r = startupOnce(w, dir, i);
      runs[w.name].push(r);
      console.error(`[bench] startup ${i + 1} ${w.name}: window ${fmt(r.window, 1)} ms, active ${fmt(r.active, 1)} ms, load ${os.loadavg()[0].toFixed(2)}`);
    }
  }
  return runs;
}

// ---------------------------------------------------------------- report

const fmt = (v, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const kib = (bytes) => (bytes / 1024).toFixed(1);

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  let wranglerVersion = 'unknown';
  try {
    wranglerVersion = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/wrangler/package.json'), 'utf8')).version;
  } catch {}
  let workerdVersion = 'unknown';
  try {
    workerdVersion = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/workerd/package.json'), 'utf8')).version;
  } catch {}
  return { nproc: os.cpus().length, model, node: process.version, wranglerVersion, workerdVersion, kernel: os.release() };
}

/** Medians of the startups, the paired ratio this/reference, and where the samples fell. */
function startupSummary(startup) {
  const out = {};
  for (const [name, runs] of Object.entries(startup ?? {})) {
    const top = new Map();
    for (const r of runs) for (const [n, ms] of r.top) if (n !== '(idle)') top.set(n, (top.get(n) ?? 0) + ms);
    out[name] = {
      window: median(runs.map((r) => r.window)),
      active: median(runs.map((r) => r.active)),
      top: [...top].sort((a, b) => b[1] - a[1]).slice(0, 4),
    };
  }
  const a = startup?.this, b = startup?.reference;
  out.ratio = a && b ? median(a.map((r, i) => r.window / b[i]?.window)) : NaN;
  return out;
}

function report({ started, finished, info, loads, checks, trials, bundles, startup, command }) {
  const lines = [];
  const add = (s = '') => lines.push(s);
  const summary = {};
  for (const w of WORKERS) {
    for (const p of PATHS) {
      const t = trials.filter((x) => x.worker === w.name && x.path === p);
      summary[`${w.name}/${p}`] = {
        rps: median(t.map((x) => x.rps)),
        p50: median(t.map((x) => x.p50)),
        p99: median(t.map((x) => x.p99)),
        cpuWorker: median(t.map((x) => x.cpuWorker)),
        cpuAll: median(t.map((x) => x.cpuAll)),
        n: t.reduce((s, x) => s + x.n, 0),
        unexpected: t.reduce((s, x) => s + x.unexpected, 0),
        signedLate: t.reduce((s, x) => s + (x.signedLate ?? 0), 0),
      };
    }
  }
  /** Median over rounds of the per-round ratio a/b (paired: both measured in the same round). */
  const paired = (a, b, p, key) => {
    const rounds = [...new Set(trials.map((x) => x.round))];
    return median(rounds.map((r) => {
      const x = trials.find((t) => t.round === r && t.worker === a && t.path === p);
      const y = trials.find((t) => t.round === r && t.worker === b && t.path === p);
      return x && y ? x[key] / y[key] : NaN;
    }));
  };
  const loadMin = Math.min(...loads), loadMax = Math.max(...loads);
  const loadMean = loads.reduce((a, b) => a + b, 0) / loads.length;

  add('## Figures of the last run');
  add();
  add(`- command: \`${command}\``);
  add(`- date: ${started.toISOString()} to ${finished.toISOString()}`);
  add(`- machine: ${info.nproc} CPUs (nproc), ${info.model}; Linux ${info.kernel}`);
  add(`- load average (1 min) during the run: min ${loadMin.toFixed(2)}, mean ${loadMean.toFixed(2)}, max ${loadMax.toFixed(2)} (sampled before every trial)`);
  add(`- runtime: wrangler ${info.wranglerVersion} (\`wrangler dev --local --ip 127.0.0.1\`), workerd ${info.workerdVersion}, Node ${info.node}; load generator autocannon, ${CONNECTIONS} connections, no pipelining`);
  add(`- design: ${ROUNDS} rounds; in each round every path on every worker for ${SECONDS} s (worker order rotating), after a ${WARMUP_SECONDS} s warm-up of each; figures are medians over the rounds; ratios are the median of the per-round ratios`);
  add(`- accept: distinct \`customer.updated\` events of ${checks.eventBytes} bytes (a type recorded \`ignored\`: a KV read and write, then the event's row in the event index's Durable Object, on both workers), signed with the SDK's \`generateTestHeaderString\` just before each trial (pool sized from the warm-up rate${Object.values(summary).reduce((n, x) => n + x.signedLate, 0) ? '; some were signed during the trial because the pool ran out' : '; the pool never ran out'}); reject: the same size of body signed with another secret`);
  add(`- handled: distinct \`identity.verification_session.processing\` events of ${checks.handledBytes} bytes, one per new user, of sessions this deployment made (\`metadata.created_by\`), signed the same way: each crosses the user's Durable Object (its table, then three KV writes, then one request to the event index with the user's list row and the event's row); in the reference, the user's Durable Object over RPC (one \`storage.put\` of three records, the same three KV writes, then one RPC to its event index with the same two rows); floor + DO hop forwards every POST to a new Durable Object, and is timed on this path only`);
  add(`- CPU per request: "worker's workerd" is the process running the worker and its Durable Objects (both isolates); "all of wrangler dev" adds the dev proxy's workerd and wrangler's Node`);
  add();
  add('### Throughput and latency (medians over rounds)');
  add();
  add('| path | worker | requests/s | p50 ms | p99 ms | CPU ms/request, worker\'s workerd (with its Durable Objects) | CPU ms/request, all of wrangler dev | requests | unexpected answers |');
  add('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const p of PATHS) {
    for (const w of WORKERS.filter((x) => measures(x, p))) {
      const s = summary[`${w.name}/${p}`];
      add(`| ${p} | ${w.label} | ${fmt(s.rps)} | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${fmt(s.cpuWorker, 2)} | ${fmt(s.cpuAll, 2)} | ${s.n} | ${s.unexpected} |`);
    }
  }
  add();
  add('### Ratios (this worker against the others; paired per round)');
  add();
  const floors = WORKERS.filter((w) => FLOORS[w.name]);
  add(`| path | CPU/request this/reference (worker's workerd; all) | rps this/reference | p50 this/reference | p99 this/reference | ${floors.map((w) => `rps this/${FLOORS[w.name]} | p99 this/${FLOORS[w.name]}`).join(' | ')} |`);
  add(`|---|---:|---:|---:|---:|${floors.map(() => '---:|---:|').join('')}`);
  for (const p of PATHS) {
    const r = (b, key) => fmt(paired('this', b, p, key), 2);
    const f = (w, key) => (measures(w, p) ? r(w.name, key) : '—');
    add(`| ${p} | ${r('reference', 'cpuWorker')}; ${r('reference', 'cpuAll')} | ${r('reference', 'rps')} | ${r('reference', 'p50')} | ${r('reference', 'p99')} | ${floors.map((w) => `${f(w, 'rps')} | ${f(w, 'p99')}`).join(' | ')} |`);
  }
  add();
  add('### Targets (issue 28)');
  add();
  const tgt = (ok) => (ok ? 'met' : '**not met**');
  for (const p of PATHS) {
    const c = paired('this', 'reference', p, 'cpuWorker');
    add(`- ${p}: CPU per request ${fmt(c, 2)}× the reference's, worker's workerd with its Durable Objects (target ≤ ${CPU_TARGET.toFixed(1)}×: ${tgt(c <= CPU_TARGET)}); for information, requests/s ${fmt(paired('this', 'reference', p, 'rps'), 2)}×, p50 ${fmt(paired('this', 'reference', p, 'p50'), 2)}×, p99 ${fmt(paired('this', 'reference', p, 'p99'), 2)}× the reference's`);
  }
  const b = bundles.this ?? { gzip: NaN };
  add(`- bundle ${kib(b.gzip)} KiB gzip, wasm + JS (target ≤ ${BUNDLE_TARGET_KIB} KiB: ${tgt(b.gzip <= BUNDLE_TARGET_KIB * 1024)}; Cloudflare free plan limit 3 MiB = 3072 KiB compressed)`);
  const st = startupSummary(startup);
  if (st.this && st.reference) {
    add(`- startup ${fmt(st.this.window, 1)} ms against the reference's ${fmt(st.reference.window, 1)} ms (\`wrangler check startup\`, median of ${STARTUP_REPEATS}; paired ratio ${fmt(st.ratio, 2)}×; target ≤ 1.0×: ${tgt(st.ratio <= 1)})`);
  } else {
    add('- startup time ≤ the reference\'s: not measured in this run (STARTUP_REPEATS=0, or this worker or the reference left out)');
  }
  add();
  if (Object.keys(st).some((k) => st[k]?.window !== undefined)) {
    add('### Startup (`wrangler check startup`, offline, local workerd)');
    add();
    add(`The startup phase of each worker (its bundle's top level; for this worker, compiling and instantiating the wasm), ${STARTUP_REPEATS} times each, interleaved; medians. "Window" is the profile's wall time, "active" its sampled time that was not idle (samples of about 10 ms: coarse); the functions are those the samples fell in, summed over all repeats.`);
    add();
    add('| worker | window ms | active ms | sampled in (ms over all repeats) |');
    add('|---|---:|---:|---|');
    for (const w of WORKERS.filter((x) => st[x.name]?.window !== undefined)) {
      const x = st[w.name];
      add(`| ${w.label} | ${fmt(x.window, 1)} | ${fmt(x.active, 1)} | ${x.top.map(([n, ms]) => `${n} ${fmt(ms, 0)}`).join(', ')} |`);
    }
    add();
  }
  add('### Bundles (`wrangler deploy --dry-run --outdir`, offline; gzip -9 per file)');
  add();
  add('| worker | file | raw KiB | gzip KiB |');
  add('|---|---|---:|---:|');
  for (const w of WORKERS) {
    for (const file of bundles[w.name].files) add(`| ${w.label} | ${file.file} | ${kib(file.raw)} | ${kib(file.gzip)} |`);
    const t = bundles[w.name];
    add(`| ${w.label} | **total** | **${kib(t.raw)}** | **${kib(t.gzip)}** |`);
  }
  add();
  add(`wrangler's own figure ("Total Upload … / gzip …"): ${WORKERS.map((w) => `${w.name} ${fmt(bundles[w.name].wranglerRawKiB, 2)} / ${fmt(bundles[w.name].wranglerGzipKiB, 2)} KiB`).join('; ')}.`);
  add();
  add('### Every trial');
  add();
  add('<details><summary>round, path, worker, requests/s, p50, p99, CPU per request, requests, load</summary>');
  add();
  add('| round | path | worker | requests/s | p50 ms | p99 ms | CPU ms/req worker | CPU ms/req all | CPU ms/req load generator | requests | load 1 min |');
  add('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of trials) add(`| ${t.round} | ${t.path} | ${t.worker} | ${fmt(t.rps)} | ${fmt(t.p50, 2)} | ${fmt(t.p99, 2)} | ${fmt(t.cpuWorker, 2)} | ${fmt(t.cpuAll, 2)} | ${fmt(t.cpuLoadgen, 2)} | ${t.n} | ${t.load.toFixed(2)} |`);
  add();
  add('</details>');
  add();
  add('### Answers checked before timing');
  add();
  for (const w of WORKERS) add(`- ${w.name}: ${JSON.stringify(checks[w.name])}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const started = new Date();
  const command = process.env.BENCH_COMMAND ?? 'bash bench/run.sh';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stripe-edge-bench-'));
  const loads = [os.loadavg()[0]];
  const info = machine();
  console.error(`[bench] ${info.nproc} CPUs, ${info.model}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const bundles = {};
  for (const w of WORKERS) {
    bundles[w.name] = dryRun(w, dir);
    console.error(`[bench] bundle ${w.name}: ${kib(bundles[w.name].raw)} KiB raw, ${kib(bundles[w.name].gzip)} KiB gzip`);
  }

  const startWorkers = WORKERS.filter((w) => w.name === 'this' || w.name === 'reference' || w.rust);
  const startup = STARTUP_REPEATS > 0 ? startups(startWorkers, dir) : {};

  const workers = [];
  try {
    for (const w of WORKERS) {
      workers.push(await startWorker(w, dir));
      console.error(`[bench] ${w.name} ready at ${workers.at(-1).url}`);
    }
    const checks = { eventBytes: Buffer.byteLength(makeEvent('size')), handledBytes: Buffer.byteLength(makeHandledEvent('size')) };
    for (const w of workers) checks[w.name] = await check(w);
    const bad = workers.filter((w) => !w.floor && !checkPassed(w, checks[w.name]));
    if (bad.length) throw new Error(`unexpected answers: ${JSON.stringify(checks)}`);

    // Warm-up: every path on every worker, also to size the accept and handled pools.
    const rate = {};
    for (const w of workers) {
      for (const p of PATHS.filter((x) => measures(w, x))) {
        const t = await trial(w, p, WARMUP_SECONDS, 2000);
        rate[`${w.name}/${p}`] = t.rps;
        console.error(`[bench] warm-up ${w.name} ${p}: ${t.rps.toFixed(0)} req/s`);
      }
    }

    const trials = [];
    for (let round = 1; round <= ROUNDS; round++) {
      for (const p of PATHS) {
        const order = workers.map((_, i) => workers[(i + round) % workers.length]);
        for (const w of order.filter((x) => measures(x, p))) {
          const t = await trial(w, p, SECONDS, rate[`${w.name}/${p}`] * 1.5);
          loads.push(t.load);
          trials.push({ round, path: p, worker: w.name, ...t });
          console.error(`[bench] round ${round} ${p} ${w.name}: ${t.rps.toFixed(0)} req/s, p50 ${t.p50.toFixed(2)} ms, p99 ${t.p99.toFixed(2)} ms, CPU/req ${t.cpuWorker.toFixed(2)} ms (all ${t.cpuAll.toFixed(2)}), load ${t.load.toFixed(2)}${t.unexpected ? `, ${t.unexpected} UNEXPECTED ${JSON.stringify(t.statuses)}` : ''}`);
        }
      }
    }
    loads.push(os.loadavg()[0]);
    const text = report({ started, finished: new Date(), info, loads, checks, trials, bundles, startup, command });
    console.log(text);
    if (WRITE_RESULTS) {
      const previous = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '';
      const notes = previous.includes(NOTES_MARKER) ? previous.slice(previous.indexOf(NOTES_MARKER)) : `${NOTES_MARKER}\n`;
      const head = '# Benchmark results\n\nThe figures section is written by `bash bench/run.sh` (bench/bench.mjs) and every figure in it comes from that run; the notes after it are kept across runs and name the run or command behind each figure they quote.\n\n';
      writeFileSync(RESULTS, `${head}${text}\n\n${notes}`);
      console.error(`[bench] wrote ${path.relative(ROOT, RESULTS)}`);
    }
    const total = trials.reduce((n, t) => n + t.unexpected, 0);
    if (total) {
      console.error(`[bench] ${total} unexpected answers`);
      process.exitCode = 1;
    }
  } finally {
    for (const w of workers) await w.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
