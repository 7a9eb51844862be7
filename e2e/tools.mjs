// Runs the command-line tools (tools/*.mjs) as child processes, the way an operator does.
// Asynchronous, so a stand-in or worker served by this test process keeps answering.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './harness.mjs';

/**
 * Runs `node tools/<tool> ...args` with only the given environment (plus PATH and HOME), so
 * the caller's STRIPE_* settings cannot leak in. Resolves to { code, stdout, stderr }.
 */
export function runTool(tool, args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'tools', tool), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

/** The event types the tools know: the fixture file names. */
export { handledEventTypes } from '../tools/common.mjs';
