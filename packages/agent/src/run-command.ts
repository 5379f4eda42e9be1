import { spawn } from 'node:child_process';
import { constants } from 'node:os';

import { createBrowserShim } from './browser-shim.js';

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * Runs `command` as the container's main program: with the browser shims in front, signals
 * passed on, and its exit status returned (128 + n when a signal ended it, as shells do).
 */
export async function runWrapped(command: string[], agentCli: string): Promise<number> {
  const [file, ...args] = command;

  if (file === undefined) {
    throw new Error('nothing to run');
  }

  const shim = await createBrowserShim(agentCli, process.env);
  const child = spawn(file, args, { stdio: 'inherit', env: shim.env });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);

  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);

  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
      });
    });
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
    await shim.remove();
  }
}
