// Child processes of the benchmark: started, watched and always ended by their process id.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const OUTPUT_KEPT_CHARS = 16 * 1024;
const live = new Set();

/**
 * Starts `command` with piped output. The output is always read (a full pipe would stall the
 * child) and its tail is kept for error messages and for reading back ports.
 */
export function startChild(label, command, args, { env = {}, stdin = 'ignore' } = {}) {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const handle = { label, child, pid: child.pid, output: '', exited: false, listeners: new Set() };
  const keep = (data) => {
    handle.output = (handle.output + data.toString()).slice(-OUTPUT_KEPT_CHARS);
    for (const listener of handle.listeners) listener();
  };

  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => keep(`\n[${label}: ${err.message}]\n`));
  child.on('exit', () => {
    handle.exited = true;
    live.delete(handle);
    for (const listener of handle.listeners) listener();
  });
  live.add(handle);

  return handle;
}

/** Resolves with the first match of `pattern` in the child's output; bounded by `timeoutMs`. */
export function waitForOutput(handle, pattern, timeoutMs) {
  return new Promise((resolve, reject) => {
    const done = (fn, value) => {
      clearTimeout(timer);
      handle.listeners.delete(check);
      fn(value);
    };
    const check = () => {
      const match = pattern.exec(handle.output);

      if (match !== null) done(resolve, match);
      else if (handle.exited) done(reject, new Error(failure(handle, 'exited')));
    };
    const timer = setTimeout(
      () => done(reject, new Error(failure(handle, `gave no ${pattern} in ${timeoutMs} ms`))),
      timeoutMs,
    );

    handle.listeners.add(check);
    check();
  });
}

/** Runs a command to its end and returns its standard output; bounded by `timeoutMs`. */
export async function runToEnd(label, command, args, { env, timeoutMs = 15_000 } = {}) {
  const handle = startChild(label, command, args, { env });
  const stdout = [];

  handle.child.stdout.on('data', (data) => stdout.push(data));

  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => {
      killTree(handle.pid);
      resolve('timeout');
    }, timeoutMs);

    handle.child.on('close', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });

  if (code !== 0) throw new Error(failure(handle, `ended with ${code}`));

  return Buffer.concat(stdout).toString();
}

/** Ends a child and whatever it forked: SIGTERM first (so it can write a CPU profile), then SIGKILL. */
export async function stopChild(handle, graceMs = 3000) {
  if (handle.exited) return;

  const forked = descendants(handle.pid);
  const exited = new Promise((resolve) => handle.child.once('exit', resolve));

  signal(handle.pid, 'SIGTERM');

  const timer = setTimeout(() => signal(handle.pid, 'SIGKILL'), graceMs);

  await exited;
  clearTimeout(timer);

  for (const pid of forked) signal(pid, 'SIGKILL');
}

/** Kills every child still running, at once and synchronously: for exit and signal handlers. */
export function killAllNow() {
  for (const handle of live) killTree(handle.pid);
}

/** Resident memory of a process in bytes, from /proc (NaN once it is gone). */
export function rssBytes(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);

    return match === null ? NaN : Number(match[1]) * 1024;
  } catch {
    return NaN;
  }
}

/** Resident memory of a process and everything it forked (sshd serves each login in children). */
export function treeRssBytes(pid) {
  return [pid, ...descendants(pid)].reduce((sum, p) => sum + (rssBytes(p) || 0), 0);
}

/** Process ids forked, directly or not, from `pid`, read from /proc. */
export function descendants(pid) {
  const children = new Map();

  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;

    const parent = parentOf(entry);

    if (parent === null) continue;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(Number(entry));
  }

  const found = [];
  const queue = [pid];

  while (queue.length > 0) {
    for (const child of children.get(queue.shift()) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }

  return found;
}

function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: the fields after the last ')' are safe.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');

    return Number(fields[1]);
  } catch {
    return null;
  }
}

function killTree(pid) {
  const forked = descendants(pid);

  signal(pid, 'SIGKILL');
  for (const child of forked) signal(child, 'SIGKILL');
}

function signal(pid, name) {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

function failure(handle, what) {
  const tail = handle.output.trim().split('\n').slice(-15).join('\n');

  return `${handle.label} ${what}${tail === '' ? '' : `; its last output:\n${tail}`}`;
}
