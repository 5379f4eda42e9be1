// Where the time of a measurement went: CPU time and time spent waiting for a CPU, from Linux's
// scheduler statistics (/proc/PID/task/TID/schedstat: nanoseconds on a CPU, then nanoseconds
// runnable but waiting for one). Where /proc has no such file (not Linux), every reading is
// null and the figures built from it have no value.
import { readdirSync, readFileSync } from 'node:fs';

import { descendants } from './children.mjs';

/**
 * CPU and run-queue time in ns of every thread of `pids` together: { runNs, waitNs }, or null.
 * A thread that ends between listing and reading is left out, so the sum is a lower bound by at
 * most that thread's last moments.
 */
export function threadTimes(pids) {
  let runNs = 0;
  let waitNs = 0;

  for (const pid of pids) {
    let threads;

    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      return null;
    }

    for (const tid of threads) {
      const times = readTimes(`/proc/${pid}/task/${tid}/schedstat`);

      if (times !== null) {
        runNs += times[0];
        waitNs += times[1];
      }
    }
  }

  return { runNs, waitNs };
}

/**
 * The same for the main thread of each of `pids` only, one file each: cheap enough to read
 * between two requests. Returns [[runNs, waitNs], …] in the order of `pids`, or null.
 */
export function mainThreadTimes(pids) {
  const out = [];

  for (const pid of pids) {
    const times = readTimes(`/proc/${pid}/schedstat`);

    if (times === null) return null;
    out.push(times);
  }

  return out;
}

/** Difference of two threadTimes readings in µs, or null when either is missing. */
export function elapsedUs(before, after) {
  if (before === null || after === null) return null;

  return {
    runUs: (after.runNs - before.runNs) / 1000,
    waitUs: (after.waitNs - before.waitNs) / 1000,
  };
}

/**
 * The processes that make up a path's tunnel (relay and agent, the two proxies, sshd with the
 * children it serves a login in and ssh), read now: sshd forks per connection.
 */
export function tunnelPids(path) {
  return (path.tunnel ?? []).flatMap((handle) => [handle.pid, ...descendants(handle.pid)]);
}

function readTimes(file) {
  try {
    const [run, wait] = readFileSync(file, 'utf8').split(' ');

    return [Number(run), Number(wait)];
  } catch {
    return null;
  }
}

/**
 * Of requests timed by sequentialLatency with mainThreadTimes samples: the slowest `share` of
 * them, in ms, their mean time (tailMs) and the mean time that all sampled processes spent on a
 * CPU (tailRun) and runnable but waiting for one (tailWait) during them, each added up over the
 * processes: on a sequential request they mostly take turns, but their times can overlap.
 */
export function slowestRequests(times, samples, share = 0.01) {
  if (times.length === 0 || samples.some((s) => s === null)) {
    return { tailMs: NaN, tailRun: NaN, tailWait: NaN };
  }

  const n = Math.max(1, Math.ceil(times.length * share));
  const slowest = times
    .map((ms, i) => ({ ms, i }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, n);
  // Field 0 of a sample is time on a CPU, field 1 time waiting for one, per process.
  const spentMs = (i, field) =>
    samples[i + 1].reduce((sum, times, p) => sum + times[field] - samples[i][p][field], 0) / 1e6;

  return {
    tailMs: mean(slowest.map((r) => r.ms)),
    tailRun: mean(slowest.map((r) => spentMs(r.i, 0))),
    tailWait: mean(slowest.map((r) => spentMs(r.i, 1))),
  };
}

function mean(values) {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
