// The README's "Try it from the shell" commands and every marked shell block of docs/, pasted in
// order as a newcomer pastes them, against one stack: the worker under wrangler dev and the
// stand-in, with the settings of .dev.vars.example (what scripts/dev.sh copies to .dev.vars),
// their state kept in one folder as scripts/dev.sh keeps it. Every shell block after a
// `<!-- readme-test -->` line runs, in file order, in one bash process per file (so variables
// carry over within a file); a command's `# ` lines right under it are its expected output, `…`
// matching anything. PORT and STANDIN_PORT are the stack's (as the export line scripts/dev.sh
// prints sets them), and the stand-in's port replaces 12111 in the expected output. A command
// that fails stops the script (set -euo pipefail). The whole set runs twice against the same
// stack, then once more after both are restarted on the same state and ports: the tour must
// repeat.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createStandIn } from '../standin/server.mjs';
import { readDevVars } from '../tools/common.mjs';
import { ROOT, connectStandIn, startWorker } from './harness.mjs';

const MARK = '<!-- readme-test -->';

/** The marked blocks of a Markdown file, each a list of {command, expected} in order. */
export function readmeCommands(text) {
  const blocks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== MARK) continue;
    assert.match(lines[i + 1] ?? '', /^```(sh|bash)\s*$/, `line ${i + 2}: a shell fence must follow ${MARK}`);
    const body = [];
    for (i += 2; i < lines.length && !lines[i].startsWith('```'); i++) body.push({ text: lines[i], line: i + 1 });
    const commands = [];
    for (let j = 0; j < body.length; j++) {
      const { text: first, line } = body[j];
      if (first.trim() === '') continue;
      if (first.startsWith('#')) {
        assert.ok(commands.length, `line ${line}: an expected output with no command above it`);
        const last = commands[commands.length - 1];
        assert.ok(first.startsWith('# '), `line ${line}: expected output is written "# …"`);
        last.expected.push(first.slice(2));
        continue;
      }
      assert.ok(!commands.at(-1)?.expected.length || true);
      let command = first;
      while (command.endsWith('\\') && j + 1 < body.length) command += '\n' + body[++j].text;
      commands.push({ command, expected: [], line });
    }
    blocks.push(commands);
  }
  return blocks;
}

/** `…` matches anything; everything else is literal; the whole line must match. */
function lineMatches(expected, actual) {
  const pattern = expected.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${pattern}$`).test(actual);
}

/** Runs the commands in one bash; the output of each, split at markers printed before it. */
function runInBash(commands, env) {
  const script = ['set -euo pipefail']
    .concat(commands.flatMap((c, i) => [`printf '\\n@@readme-command-${i}@@\\n'`, c.command]))
    .concat([`printf '\\n@@readme-end@@\\n'`])
    .join('\n');
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      const outputs = new Map();
      const parts = stdout.split(/\n@@readme-(command-\d+|end)@@\n/);
      for (let k = 1; k < parts.length; k += 2) outputs.set(parts[k], parts[k + 1] ?? '');
      resolve({ code, stdout, stderr, outputs });
    });
  });
}

/** README.md, then the pages of docs/ that have marked blocks: [{file, commands}]. */
function markedFiles(standInPort) {
  const files = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  return files
    .map((file) => ({ file, commands: readmeCommands(readFileSync(path.join(ROOT, file), 'utf8').replaceAll('127.0.0.1:12111', `127.0.0.1:${standInPort}`)).flat() }))
    .filter(({ commands }) => commands.length);
}

const example = readDevVars(path.join(ROOT, '.dev.vars.example'));
const secret = example.STRIPE_WEBHOOK_SECRET.split(',')[0];
const state = mkdtempSync(path.join(os.tmpdir(), 'readme-state-'));
let standIn;
let worker;
let standInPort;
let workerPort;

/** The stand-in and the worker on the state folder (and, after the first start, the same ports). */
async function startStackOnState() {
  standIn = createStandIn({ stateFile: path.join(state, 'standin.json') });
  const stripeBase = await standIn.listen(standInPort ?? 0);
  standInPort = Number(new URL(stripeBase).port);
  // .dev.vars.example as scripts/dev.sh uses it (which also sets LOCAL_DEV=true), with the
  // stand-in on its own port.
  worker = await startWorker({ ...example, STRIPE_API_BASE: stripeBase, LOCAL_DEV: 'true' }, { port: workerPort, persistTo: state });
  workerPort = Number(new URL(worker.url).port);
  await connectStandIn(stripeBase, worker, secret);
}

async function stopStack() {
  await worker?.stop();
  await standIn?.close();
}

before(startStackOnState);
after(stopStack);

test('the README parses into marked shell blocks, each command with what it prints', () => {
  const blocks = readmeCommands(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  assert.ok(blocks.length >= 5, `only ${blocks.length} marked blocks`);
  const commands = blocks.flat();
  assert.ok(commands.filter((c) => c.expected.length).length >= 10, 'most commands show their output');
  for (const route of ['/health', '/create-checkout-session', '/customers/', '/charges', '/identity/verification-sessions', '/identity/users/']) {
    assert.ok(commands.some((c) => c.command.includes(route)), `no command uses ${route}`);
  }
  assert.ok(markedFiles(12111).some(({ file }) => file.startsWith('docs/')), 'no page of docs/ has a marked block');
});

/** Runs every marked file's commands; the failures, each naming its file and line. */
async function runAll(t, round) {
  const failures = [];
  for (const { file, commands } of markedFiles(standInPort)) {
    const env = {
      ...process.env,
      PORT: String(workerPort),
      STANDIN_PORT: String(standInPort),
      // What tools/trigger.mjs reads from .dev.vars when it is the example's copy.
      STRIPE_WEBHOOK_SECRET: example.STRIPE_WEBHOOK_SECRET,
      // ... and its ADMIN_TOKEN, with which it prints the recorded outcome.
      ADMIN_TOKEN: example.ADMIN_TOKEN,
    };
    const run = await runInBash(commands, env);
    commands.forEach((c, i) => {
      const output = run.outputs.get(`command-${i}`);
      if (output === undefined) {
        failures.push(`${round}, ${file} line ${c.line}: never ran (an earlier command failed)`);
        return;
      }
      t.diagnostic(`${round} ${file} $ ${c.command.split('\n')[0]}\n${output.trimEnd()}`);
      if (!c.expected.length) return;
      const lines = output.replace(/\n+$/, '').split('\n');
      const ok = lines.length === c.expected.length && c.expected.every((e, k) => lineMatches(e, lines[k]));
      if (!ok) failures.push(`${round}, ${file} line ${c.line}: ${c.command.split('\n')[0]}\n  expected: ${c.expected.join('\n            ')}\n  printed:  ${lines.join('\n            ')}`);
    });
    if (!run.outputs.has('end')) failures.push(`${round}, ${file}: the script stopped (exit ${run.code}): ${run.stderr.trim().split('\n').slice(-5).join('\n  ')}`);
  }
  return failures;
}

test("every marked command of the README and docs/ works when pasted in order, and prints what it shows", async (t) => {
  const failures = await runAll(t, 'first run');
  assert.deepEqual(failures, [], failures.join('\n\n'));
});

test('pasted again against the same stack, they work again', async (t) => {
  const failures = await runAll(t, 'second run');
  assert.deepEqual(failures, [], failures.join('\n\n'));
});

test('after restarting the worker and the stand-in on the same state, they work again', async (t) => {
  await stopStack();
  await startStackOnState();
  const failures = await runAll(t, 'after a restart');
  assert.deepEqual(failures, [], failures.join('\n\n'));
});
