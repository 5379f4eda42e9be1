import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { isatty } from 'node:tty';

import { createBrowserShim } from './browser-shim.js';
import { messages } from './messages.js';

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

// Keys that a terminal turns into signals (Ctrl-C, Ctrl-\) reach every process in its
// foreground group, the command as well as the agent. Passed on again they would arrive twice,
// and tools such as Claude Code take a second Ctrl-C as "exit".
const TERMINAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT'];

// Statuses a shell gives a command it could not start, which scripts and supervisors test for.
const NOT_FOUND = 127;
const NOT_EXECUTABLE = 126;

/**
 * The environment the wrapped command gets. The tool in the container, possibly an AI agent,
 * talks to porthole only through the browser stand-ins and the agent's local socket, so it has
 * no use for the relay token, and a token it cannot see is one it cannot leak.
 */
export function commandEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };

  delete copy['PORTHOLE_TOKEN'];

  return copy;
}

// Says why the command could not start, as a shell would, and returns the shell's status.
function notStarted(file: string, err: NodeJS.ErrnoException): number {
  const missing = err.code === 'ENOENT';
  const text = missing
    ? messages.commandNotFound(file, file.includes('/'))
    : messages.commandNotStarted(file, err.code ?? 'error');

  process.stderr.write(`porthole-agent: ${text}\n`);

  return missing ? NOT_FOUND : NOT_EXECUTABLE;
}

/**
 * Runs `command` as the container's main program: with the browser shims in front, signals
 * passed on, and its exit status returned (128 + n when a signal ended it, as shells do; 127
 * and 126 when it could not be found or started).
 */
export async function runWrapped(command: string[], agentCli: string): Promise<number> {
  const [file, ...args] = command;

  if (file === undefined) {
    throw new Error('nothing to run');
  }

  const shim = await createBrowserShim(agentCli, commandEnv(process.env));
  const child = spawn(file, args, { stdio: 'inherit', env: shim.env });
  const onTerminal = isatty(0);
  const forward = (signal: NodeJS.Signals) => {
    if (!(onTerminal && TERMINAL_SIGNALS.includes(signal))) child.kill(signal);
  };

  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);

  try {
    return await new Promise<number>((resolve) => {
      // Once the command runs, an error event is a failed kill(), not a failed start.
      child.on('error', (err) => {
        if (child.pid === undefined) resolve(notStarted(file, err));
      });
      child.once('exit', (code, signal) => {
        resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
      });
    });
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
    await shim.remove();
  }
}
