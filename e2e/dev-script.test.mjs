// scripts/dev.sh as a developer runs it: a taken port (the worker's or the stand-in's) stops it
// before anything starts; otherwise it prints the export line for a second terminal, keeps the
// worker's and the stand-in's state together in one folder, wipes both with --reset, and with
// --test-scheduled serves /__scheduled. Its state folder is a scratch one (DEV_STATE), never the
// checkout's .wrangler/state.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { readDevVars } from '../tools/common.mjs';
import { ROOT, freePort } from './harness.mjs';

const settings = existsSync(path.join(ROOT, '.dev.vars')) ? readDevVars(path.join(ROOT, '.dev.vars')) : readDevVars(path.join(ROOT, '.dev.vars.example'));
const withStandIn = /^http:\/\/127\.0\.0\.1:\d+\/?$/.test(settings.STRIPE_API_BASE ?? '');

const started = new Set();
// A run a failed assertion left behind (a dev.sh that did not stop by itself) ends with the file.
after(() => Promise.all([...started].map((run) => run.stop())));

/** Runs scripts/dev.sh in its own process group; `stop()` ends the group (SIGINT, as Ctrl-C). */
function devScript(args, env) {
  const child = spawn('bash', ['scripts/dev.sh', ...args], {
    cwd: ROOT,
    env: { ...process.env, SKIP_WORKER_BUILD: '1', NO_COLOR: '1', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const run = {
    output: () => output,
    exited,
    async stop() {
      try {
        process.kill(-child.pid, 'SIGINT');
      } catch {
        return exited;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  started.add(run);
  return run;
}

/** A listener on a free loopback port, standing in for another dev.sh's worker or stand-in. */
async function occupiedPort() {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

async function ready(url, deadline = Date.now() + 120_000) {
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2000) })).ok) return true;
    } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

test("a taken worker port stops dev.sh at once, before the stand-in starts", { timeout: 60_000 }, async () => {
  const taken = await occupiedPort();
  const standinPort = await freePort();
  try {
    const run = devScript([], { PORT: String(taken.port), STANDIN_PORT: withStandIn ? String(standinPort) : '', DEV_STATE: mkdtempSync(path.join(os.tmpdir(), 'dev-state-')) });
    const code = await run.exited;
    assert.equal(code, 1, run.output());
    // Failing fast is stopping before anything starts (not a number of seconds, which a busy
    // machine would break): neither the stand-in nor the worker was announced.
    assert.doesNotMatch(run.output(), /Stripe stand-in on|\[dev\] the worker:/, 'it did not fail fast');
    assert.match(run.output(), new RegExp(`port ${taken.port} is taken on 127\\.0\\.0\\.1.*nothing started`));
    if (withStandIn) assert.ok(!(await ready(`http://127.0.0.1:${standinPort}/_test/counts`, Date.now() + 500)), 'a stand-in was started');
  } finally {
    await taken.close();
  }
});

test("a taken stand-in port stops dev.sh before wrangler starts (its events would reach the other worker)", { timeout: 60_000, skip: !withStandIn && '.dev.vars talks to real Stripe' }, async () => {
  const taken = await occupiedPort();
  const port = await freePort();
  try {
    const run = devScript([], { PORT: String(port), STANDIN_PORT: String(taken.port), DEV_STATE: mkdtempSync(path.join(os.tmpdir(), 'dev-state-')) });
    const code = await run.exited;
    assert.equal(code, 1, run.output());
    assert.match(run.output(), new RegExp(`stand-in's port ${taken.port} is taken.*nothing started`));
    assert.doesNotMatch(run.output(), /wrangler/i);
  } finally {
    await taken.close();
  }
});

test('--reset wipes the state folder, the export line names both ports, state is kept beside the stand-in\'s, --test-scheduled serves /__scheduled', { timeout: 180_000, skip: !withStandIn && '.dev.vars talks to real Stripe' }, async () => {
  const state = path.join(mkdtempSync(path.join(os.tmpdir(), 'dev-state-')), 'state');
  mkdirSync(state);
  writeFileSync(path.join(state, 'left-over'), 'from an earlier run');
  const port = await freePort();
  const standinPort = await freePort();
  const run = devScript(['--reset', '--test-scheduled'], { PORT: String(port), STANDIN_PORT: String(standinPort), DEV_STATE: state });
  try {
    assert.ok(await ready(`http://127.0.0.1:${port}/health`), `the worker did not come up:\n${run.output()}`);
    assert.ok(!existsSync(path.join(state, 'left-over')), '--reset left the old state');
    assert.ok(run.output().split('\n').includes(`export PORT=${port} STANDIN_PORT=${standinPort}`), run.output());
    assert.equal((await fetch(`http://127.0.0.1:${standinPort}/_test/counts`)).status, 200);
    const scheduled = await fetch(`http://127.0.0.1:${port}/__scheduled?cron=*+*+*+*+*`);
    assert.equal(scheduled.status, 200, await scheduled.text());
    const checkout = await fetch(`http://127.0.0.1:${port}/create-checkout-session`, {
      method: 'POST', redirect: 'manual', headers: { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'currency=usd',
    });
    assert.equal(checkout.status, 303);
    assert.ok(checkout.headers.get('location').startsWith(`http://127.0.0.1:${standinPort}/c/pay/cs_test_`), 'the worker does not call the stand-in on STANDIN_PORT');
  } finally {
    await run.stop();
  }
  const kept = JSON.parse(readFileSync(path.join(state, 'standin.json'), 'utf8'));
  assert.ok(kept.objects.some(([id]) => id.startsWith('cs_test_')), "the stand-in's session is not kept in the state folder");
  assert.ok(existsSync(path.join(state, 'v3')), `wrangler's state is not in the same folder: ${state}`);
});
