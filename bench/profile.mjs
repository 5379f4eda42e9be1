// The --profile run: porthole and the two plain hops with every Node process writing a CPU
// profile (`node --cpu-prof`), then where each tunnel process spent its own (self) time while
// the measured work ran, which points at what to make cheaper.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { download, MIB, sequentialLatency, upload } from './measure.mjs';
import { PATH_LABELS, startPaths } from './paths.mjs';
import { formatNumber } from './report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROFILED_PATHS = ['hops', 'porthole'];
// The processes whose profiles are summarised, by the path they belong to.
const TUNNEL_PROCESSES = { hops: ['proxy1', 'proxy2'], porthole: ['relay', 'agent'] };
const LATENCY_REQUESTS = 20_000;
const TRANSFERS = 4;

/**
 * Runs each kind of work (sequential small requests, then transfers) with processes of its own,
 * so that each profile shows one kind of work, after a warm-up that is left out of the summary.
 * Writes the profiles under the system's temporary directory and prints the summary.
 */
export async function profileRun(config, tmp) {
  const profileDir = mkdtempSync(join(os.tmpdir(), 'porthole-bench-prof-'));
  const phases = [latencyPhase(config), throughputPhase(config)];
  const summaries = [];

  for (const phase of phases) {
    const phaseDir = join(profileDir, phase.name);
    const phaseTmp = join(tmp, phase.name);

    mkdirSync(phaseTmp);

    const { paths, close } = await startPaths({
      tmp: phaseTmp,
      idleMs: config.idleMs,
      profileDir: phaseDir,
      only: PROFILED_PATHS,
    });
    const windows = {};

    try {
      for (const key of PROFILED_PATHS) {
        await phase.warmUp(paths[key].port);
        windows[key] = { fromUs: nowUs() };
        process.stdout.write(
          `${phase.name}, ${PATH_LABELS[key]}: ${await phase.run(paths[key].port)}\n`,
        );
        windows[key].toUs = nowUs();
      }
    } finally {
      // The processes write their profiles as they exit.
      await close();
    }

    summaries.push({ phase, dir: phaseDir, windows });
  }

  for (const { phase, dir, windows } of summaries) {
    process.stdout.write(`\n${phase.name}: self time per process while measured, ${phase.per}\n`);
    for (const key of PROFILED_PATHS) {
      for (const name of TUNNEL_PROCESSES[key]) {
        const summary = summarizeProfile(join(dir, name), windows[key]);

        process.stdout.write(`${profileLines(name, summary, phase.units).join('\n')}\n`);
      }
    }
  }
  process.stdout.write(`\nCPU profiles in ${profileDir}\n`);
}

function latencyPhase(config) {
  return {
    name: 'latency',
    per: 'µs per request',
    units: LATENCY_REQUESTS / 1000,
    warmUp: (port) => sequentialLatency(port, config.warmupSequential, 10_000),
    async run(port) {
      const r = await sequentialLatency(port, LATENCY_REQUESTS, 10_000);

      return `p50 ${formatNumber(r.p50)} ms, p99 ${formatNumber(r.p99)} ms over ${LATENCY_REQUESTS} requests`;
    },
  };
}

function throughputPhase(config) {
  return {
    name: 'throughput',
    per: 'ms per 100 MiB',
    units: (2 * TRANSFERS * config.transferBytes) / (100 * MIB),
    async warmUp(port) {
      await download(port, 20 * MIB, 60_000);
      await upload(port, 20 * MIB, 60_000);
    },
    async run(port) {
      const rates = [];

      for (let i = 0; i < TRANSFERS; i += 1) {
        const down = await download(port, config.transferBytes, 180_000);
        const up = await upload(port, config.transferBytes, 180_000);

        rates.push(`${down.mibPerSecond.toFixed(0)}/${up.mibPerSecond.toFixed(0)}`);
      }

      return `download/upload MiB/s ${rates.join(', ')}`;
    },
  };
}

// The clock that V8 stamps profile samples with: CLOCK_MONOTONIC, in µs.
function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Where the process whose profile is in `dir` spent its busy time between `fromUs` and `toUs`:
 * { busyMs, top: [{ name, where, ms, share }] } by self time, share being of the busy time.
 */
export function summarizeProfile(dir, { fromUs, toUs }, limit = 12) {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map();
  let at = profile.startTime;

  // Each sample stands for the time until the next one.
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i];
    if (at < fromUs || at > toUs) return;

    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const key = frameKey(byId.get(id).callFrame);

    totals.set(key, (totals.get(key) ?? 0) + ms);
  });
  totals.delete('(idle)\t');

  const busyMs = [...totals.values()].reduce((a, b) => a + b, 0);
  const top = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, ms]) => {
      const [name, where] = key.split('\t');

      return { name, where, ms, share: busyMs > 0 ? ms / busyMs : 0 };
    });

  return { busyMs, top };
}

/** A summary as text lines; `units` divides its milliseconds into the phase's unit. */
export function profileLines(name, { busyMs, top }, units) {
  const per = (ms) => formatNumber(ms / units).padStart(6);

  return [
    `${name}: ${per(busyMs).trim()} busy`,
    ...top.map(
      (f) => `  ${per(f.ms)}  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`,
    ),
  ];
}

function frameKey({ functionName, url, lineNumber }) {
  const where = url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`;

  return `${functionName || '(anonymous)'}\t${where}`;
}

// Paths relative to the workspace, and a package's files by package name.
function shortUrl(url) {
  const path = url.replace(/^file:\/\//, '');
  const inModules = /node_modules\/\.pnpm\/[^/]+\/node_modules\/(.*)$/.exec(path);

  if (inModules !== null) return inModules[1];
  return path.startsWith(ROOT) ? path.slice(ROOT.length) : path;
}
