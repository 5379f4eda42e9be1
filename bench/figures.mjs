// What the benchmark reports (figures) and the measurement steps that produce them. A step runs
// once per path per round and yields one value for each of its figures.
import { statSync } from 'node:fs';
import os from 'node:os';

import { elapsedUs, mainThreadTimes, slowestRequests, threadTimes, tunnelPids } from './cpu.mjs';
import { measureFleet } from './fleet.mjs';
import { concurrent, download, MIB, sequentialLatency, upload } from './measure.mjs';
import { portholeBuild } from './porthole.mjs';
import { measureDetection } from './watcher.mjs';

const REQUEST_TIMEOUT_MS = 10_000;
const TRANSFER_TIMEOUT_MS = 180_000;
const CONCURRENT_TIMEOUT_MS = 30_000;

/**
 * The figures, in table order. `better` says which way is good and gives the ratio to direct a
 * meaning; `summary: 'sum'` adds the rounds up instead of taking their median (error counts).
 */
export function defineFigures(config) {
  const mib = config.transferBytes / MIB;
  const [few, many] = config.concurrency;
  const cores = `cores of ${os.cpus().length}`;

  return [
    {
      key: 'p50',
      label: `latency p50, ${config.sequential} sequential`,
      unit: 'ms',
      better: 'lower',
    },
    {
      key: 'p99',
      label: `latency p99, ${config.sequential} sequential`,
      unit: 'ms',
      better: 'lower',
    },
    { key: 'seqCpu', label: 'tunnel CPU per sequential request', unit: 'µs' },
    {
      key: 'tailMs',
      label: `slowest 1% of ${config.sequential} more, accounted: mean`,
      unit: 'ms',
    },
    { key: 'tailRun', label: '… on a CPU, all processes added up', unit: 'ms' },
    { key: 'tailWait', label: '… waiting for a CPU, all processes added up', unit: 'ms' },
    { key: 'download', label: `download ${mib} MiB`, unit: 'MiB/s', better: 'higher' },
    { key: 'downloadCores', label: 'CPU busy in the download, all processes', unit: cores },
    { key: 'upload', label: `upload ${mib} MiB`, unit: 'MiB/s', better: 'higher' },
    { key: 'uploadCores', label: 'CPU busy in the upload, all processes', unit: cores },
    { key: 'fewWall', label: `${few} concurrent, wall time`, unit: 'ms', better: 'lower' },
    { key: 'fewErrors', label: `${few} concurrent, errors`, unit: 'sum', summary: 'sum' },
    { key: 'fewOverflows', label: `${few} concurrent, SYNs dropped`, unit: 'sum', summary: 'sum' },
    { key: 'manyWall', label: `${many} concurrent, wall time`, unit: 'ms', better: 'lower' },
    { key: 'manyErrors', label: `${many} concurrent, errors`, unit: 'sum', summary: 'sum' },
    {
      key: 'manyOverflows',
      label: `${many} concurrent, SYNs dropped`,
      unit: 'sum',
      summary: 'sum',
    },
    { key: 'startMs', label: 'agent start → connected', unit: 'ms' },
    { key: 'agentRss', label: 'agent idle RSS', unit: 'MiB' },
    { key: 'relayRss', label: 'relay idle RSS', unit: 'MiB' },
    {
      key: 'fleetMemory',
      label: `relay memory per idle agent, ${config.fleetAgents} agents`,
      unit: 'KiB',
    },
    { key: 'fleetConnect', label: `${config.fleetAgents} agents connect, wall time`, unit: 'ms' },
    {
      key: 'fleetRequest',
      label: `a request through agent number ${config.fleetAgents}`,
      unit: 'ms',
    },
    { key: 'bundleSize', label: 'one-file agent, size', unit: 'KiB' },
    { key: 'watchIdleCpu', label: 'agent idle CPU, port watcher on', unit: '% of a core' },
    { key: 'watchIdleRss', label: 'agent idle RSS, port watcher on', unit: 'MiB' },
    {
      key: 'detect',
      label: `listen() → mirrored, p50 of ${config.detectTrials}`,
      unit: 'ms',
    },
  ];
}

/**
 * The measurement steps. `run(path)` resolves to { values, note? }: values keyed by figure; a
 * note says what went wrong with a value (which is then NaN, not a misleading number).
 */
export function defineSteps(config) {
  const [few, many] = config.concurrency;

  return [
    {
      figures: ['p50', 'p99', 'seqCpu'],
      async run(path) {
        const pids = tunnelPids(path);
        // Only before the first and after the last request: the timed requests run undisturbed.
        const sample = (i) => (i === 0 || i === config.sequential ? threadTimes(pids) : null);
        const r = await sequentialLatency(path.port, config.sequential, REQUEST_TIMEOUT_MS, sample);
        const cpu = pids.length === 0 ? null : elapsedUs(r.samples[0], r.samples.at(-1));
        const note =
          r.connections > 0 ? `keep-alive broke: ${r.connections} new connections` : undefined;

        return {
          values: { p50: r.p50, p99: r.p99, seqCpu: (cpu?.runUs ?? NaN) / config.sequential },
          note,
        };
      },
    },
    {
      // A second pass that reads every process's scheduler times between requests: where the
      // slowest requests spent their time, which the undisturbed pass above cannot tell.
      figures: ['tailMs', 'tailRun', 'tailWait'],
      async run(path) {
        const pids = [process.pid, path.server.pid, ...tunnelPids(path)];
        const r = await sequentialLatency(path.port, config.sequential, REQUEST_TIMEOUT_MS, () =>
          mainThreadTimes(pids),
        );

        return { values: slowestRequests(r.times, r.samples) };
      },
    },
    transferStep('download', download, config.transferBytes),
    transferStep('upload', upload, config.transferBytes),
    concurrencyStep(few, 'few'),
    concurrencyStep(many, 'many'),
    {
      figures: ['startMs', 'agentRss', 'relayRss'],
      appliesTo: (path) => path.measureStart !== undefined,
      async run(path) {
        const r = await path.measureStart();

        return {
          values: { startMs: r.startMs, agentRss: r.agentRss / MIB, relayRss: r.relayRss / MIB },
        };
      },
    },
  ];
}

/**
 * Measurements of porthole alone, run once per run after the rounds (they start relays and
 * agents of their own). `run({ tmp, serverPort })` resolves to { values, note? } as a step's
 * does; a value may be a list (one per trial), summarised like the rounds of a figure.
 */
export function defineScaleSteps(config) {
  return [
    {
      label: `${config.fleetAgents} agents`,
      async run({ tmp, serverPort }) {
        const r = await measureFleet({ tmp, count: config.fleetAgents, serverPort });
        const note =
          r.listed === config.fleetAgents
            ? undefined
            : `the relay listed ${r.listed} of ${config.fleetAgents} agents as connected`;

        return {
          values: {
            fleetMemory: r.perAgentBytes / 1024,
            fleetConnect: r.connectMs,
            fleetRequest: r.requestMs,
          },
          note,
        };
      },
    },
    {
      label: 'one-file agent',
      async run() {
        const { bundle } = portholeBuild();

        if (bundle === null) {
          return { values: {}, note: 'the one-file agent is not built: run `npm run build`' };
        }

        return { values: { bundleSize: statSync(bundle).size / 1024 } };
      },
    },
    {
      label: 'port watcher',
      async run({ tmp }) {
        const r = await measureDetection({
          tmp,
          trials: config.detectTrials,
          idleMs: config.idleMs * 3,
        });

        return {
          values: { watchIdleCpu: r.idleCpu, watchIdleRss: r.idleRss / MIB, detect: r.detectMs },
          note: `port watcher measured ${r.where}`,
        };
      },
    },
  ];
}

// Byte counts are checked: a transfer that lost or gained bytes has no throughput. The CPU time
// of the client, the server and the tunnel over the transfer's wall time says how much of the
// machine the path needed.
function transferStep(key, transfer, bytes) {
  const coresKey = `${key}Cores`;

  return {
    figures: [key, coresKey],
    async run(path) {
      const pids = [process.pid, path.server.pid, ...tunnelPids(path)];
      const before = threadTimes(pids);
      const started = performance.now();
      const r = await transfer(path.port, bytes, TRANSFER_TIMEOUT_MS);
      const wallMs = performance.now() - started;
      const cpu = elapsedUs(before, threadTimes(pids));
      const cores = cpu === null ? NaN : cpu.runUs / 1000 / wallMs;

      if (r.complete) return { values: { [key]: r.mibPerSecond, [coresKey]: cores } };
      return {
        values: { [key]: NaN, [coresKey]: NaN },
        note: `${key} moved ${r.received} of ${bytes} bytes`,
      };
    },
  };
}

// Also counts the SYNs the kernel dropped on a full accept queue: they explain a wall time of
// about a second more than the work needs.
function concurrencyStep(count, prefix) {
  const keys = {
    wall: `${prefix}Wall`,
    errors: `${prefix}Errors`,
    overflows: `${prefix}Overflows`,
  };

  return {
    figures: Object.values(keys),
    async run(path) {
      const r = await concurrent(path.port, count, CONCURRENT_TIMEOUT_MS);
      const note =
        r.errors > 0 ? `${count} concurrent: ${r.errors} failed (${r.firstError})` : undefined;

      return {
        values: { [keys.wall]: r.wallMs, [keys.errors]: r.errors, [keys.overflows]: r.overflows },
        note,
      };
    },
  };
}
