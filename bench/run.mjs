// npm run bench -- [--quick] [--rounds N] [--baseline DIR] [--profile]
//
// Measures the same client against four paths to the same server (direct, two plain hops,
// porthole, ssh -R), interleaved round by round, and prints one table. --baseline DIR adds a
// fifth path: the porthole built in another checkout (an earlier commit), for before and after
// figures from one run. A full run also writes bench/results/latest.md and
// bench/results/ratios.svg. --profile instead runs sequential requests and transfers through
// porthole and the two plain hops, with CPU profiles of every Node process written under the
// system's temporary directory.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ratioChart } from './chart.mjs';
import { killAllNow } from './children.mjs';
import { defineFigures, defineScaleSteps, defineSteps } from './figures.mjs';
import { concurrent, download, MIB, sequentialLatency, upload } from './measure.mjs';
import { PATH_KEYS, PATH_LABELS, startPaths } from './paths.mjs';
import { portholeBuild } from './porthole.mjs';
import { profileRun } from './profile.mjs';
import {
  buildDescription,
  countFigures,
  markdownReport,
  summarize,
  tableRows,
  textTable,
  verdict,
  verdictLines,
} from './report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('results/', import.meta.url));

const USAGE = `Usage: npm run bench -- [--quick] [--rounds N] [--baseline DIR] [--profile]

  --quick          3 short rounds, under a minute; prints the table, writes no report
  --rounds N       rounds to run (1 to 50)
  --baseline DIR   also measure the porthole built in checkout DIR, side by side
  --profile        latency and throughput through porthole and the two plain hops only,
                   with CPU profiles of every Node process in a temporary directory
`;

const WARMUP = { transferBytes: 20 * MIB, concurrency: 200 };

const CONFIGS = {
  full: {
    rounds: 9,
    // Measured: the relay's and agent's CPU time per small request settles only after 6,000 to
    // 11,000 of them (the JIT keeps optimizing until then), that of two plain proxies after 4,000
    // to 5,000. Fewer would measure porthole warming up, not porthole.
    warmupSequential: 10_000,
    sequential: 1000,
    transferBytes: 100 * MIB,
    concurrency: [200, 1000],
    idleMs: 1000,
    fleetAgents: 1000,
    detectTrials: 20,
    // Past this no new round starts; a hard stop follows a minute later.
    budgetMs: 15 * 60_000,
  },
  quick: {
    rounds: 3,
    warmupSequential: 1000,
    sequential: 200,
    transferBytes: 20 * MIB,
    concurrency: [200, 1000],
    idleMs: 300,
    fleetAgents: 200,
    detectTrials: 5,
    budgetMs: 50_000,
  },
};

class UsageError extends Error {}

function readConfig() {
  let values;

  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        rounds: { type: 'string' },
        profile: { type: 'boolean', default: false },
        baseline: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err.message);
  }

  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const config = { ...CONFIGS[values.quick ? 'quick' : 'full'], quick: values.quick };

  if (values.rounds !== undefined) {
    const rounds = Number(values.rounds);

    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50)
      throw new UsageError('--rounds takes 1 to 50');
    config.rounds = rounds;
  }

  if (values.baseline !== undefined) {
    config.baselineRoot = resolve(values.baseline);
    try {
      portholeBuild(config.baselineRoot);
    } catch (err) {
      throw new UsageError(`--baseline: ${err.message}`);
    }
    // The baseline column is named after its commit, so that a report says what it compared.
    PATH_LABELS.baseline = `porthole ${buildDescription(config.baselineRoot).replace(/^porthole /, '')}`;
  }

  return { ...config, profile: values.profile };
}

async function main() {
  const config = readConfig();
  const tmp = mkdtempSync(join(os.tmpdir(), 'porthole-bench-'));

  // The measurements after the rounds (scale steps) take well under a minute more.
  guardProcessTree(tmp, config.budgetMs + 2 * 60_000);
  if (config.profile) await profileRun(config, tmp);
  else await benchRun(config, tmp);
}

// Children die with us whichever way we end: normally, on an error, on a signal or on the hard
// time limit. Our own helpers also end when their standard input from us closes.
function guardProcessTree(tmp, hardLimitMs) {
  const cleanUp = () => {
    killAllNow();
    rmSync(tmp, { recursive: true, force: true });
  };
  const stop = (why, code) => {
    process.stderr.write(`bench: ${why}, stopping\n`);
    cleanUp();
    process.exit(code);
  };

  process.on('exit', cleanUp);
  process.on('SIGINT', () => stop('interrupted', 130));
  process.on('SIGTERM', () => stop('terminated', 143));
  setTimeout(() => stop(`still running after ${hardLimitMs / 1000} s`, 1), hardLimitMs).unref();
}

async function benchRun(config, tmp) {
  const started = performance.now();
  const loadAtStart = os.loadavg();
  const figures = defineFigures(config);
  const { paths, skipped, close } = await startPaths({
    tmp,
    idleMs: config.idleMs,
    baselineRoot: config.baselineRoot,
  });
  const pathKeys = PATH_KEYS.filter((key) => paths[key] !== undefined);

  for (const [key, why] of Object.entries(skipped)) {
    process.stderr.write(`bench: skipping ${PATH_LABELS[key]}: ${why}\n`);
  }

  let outcome;

  try {
    outcome = await runRounds(config, paths, pathKeys, started);
    if (paths.porthole !== undefined) {
      await runScaleSteps(config, { tmp, serverPort: paths.direct.port }, outcome);
    }
  } finally {
    await close();
  }

  const summary = summarize(figures, outcome.results, columnKeys(config));
  const rows = tableRows(figures, summary, columnKeys(config));
  const checks = verdict(summary, config);

  printTable(config, outcome, rows, checks, skipped);
  if (!config.quick) {
    const elapsedS = (performance.now() - started) / 1000;

    writeReport({
      ...outcome,
      figures,
      summary,
      rows,
      checks,
      config,
      skipped,
      pathKeys,
      elapsedS,
      loadAtStart,
    });
  }
  process.stdout.write(`bench: ${countFigures(summary)} figures\n`);
}

// The table's columns: every path, also one that was skipped (its column says so with dashes),
// except the earlier build, which exists only when --baseline names one.
function columnKeys(config) {
  return PATH_KEYS.filter((key) => key !== 'baseline' || config.baselineRoot !== undefined);
}

/**
 * Runs every step on every path, round after round. Within a round each step runs on all paths
 * before the next step starts, and the path order rotates per round, so that slow drift of the
 * machine and warm-up effects spread over all paths alike.
 */
async function runRounds(config, paths, pathKeys, started) {
  const steps = defineSteps(config);
  const results = {};
  const notes = [];
  let roundsRun = 0;

  await warmUp(config, paths, pathKeys, notes);

  for (let round = 0; round < config.rounds; round += 1) {
    if (performance.now() - started > config.budgetMs) {
      notes.push(`time budget used up: ran ${roundsRun} of ${config.rounds} rounds`);
      break;
    }

    const order = pathKeys.map((_, i) => pathKeys[(i + round) % pathKeys.length]);

    for (const step of steps) {
      for (const key of order.filter((k) => step.appliesTo?.(paths[k]) ?? true)) {
        await runStep(step, key, paths[key], round, results, notes);
      }
    }
    roundsRun += 1;
    noteExits(paths, pathKeys, notes);
    process.stderr.write(
      `bench: round ${round + 1}/${config.rounds} done at ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
    );
  }

  return { results, notes, roundsRun };
}

// The porthole-only measurements, once each; their values go in the porthole column.
async function runScaleSteps(config, context, { results, notes }) {
  for (const step of defineScaleSteps(config)) {
    let outcome;

    try {
      outcome = await step.run(context);
    } catch (err) {
      outcome = { values: {}, note: `${step.label}: ${err.message.split('\n')[0]}` };
    }

    for (const [figure, value] of Object.entries(outcome.values)) {
      results[figure] = { porthole: [value].flat() };
    }
    if (outcome.note !== undefined) notes.push(outcome.note);
    process.stderr.write(`bench: ${step.label} measured\n`);
  }
}

// One pass over every path that is not counted: the JIT compiles the hot code of every Node
// process on the way and connection pools exist, so the first counted round is not the slowest.
async function warmUp(config, paths, pathKeys, notes) {
  for (const key of pathKeys) {
    const { port } = paths[key];

    try {
      await sequentialLatency(port, config.warmupSequential, 10_000);
      await download(port, WARMUP.transferBytes, 60_000);
      await upload(port, WARMUP.transferBytes, 60_000);
      await concurrent(port, WARMUP.concurrency, 30_000);
    } catch (err) {
      notes.push(`warm-up, ${PATH_LABELS[key]}: ${err.message.split('\n')[0]}`);
    }
  }
}

// A tunnel process that died explains the failures after it: say so once, with its last words.
function noteExits(paths, pathKeys, notes) {
  for (const key of pathKeys) {
    for (const handle of paths[key].processes) {
      if (!handle.exited || handle.exitNoted) continue;

      const tail = handle.output.trim().split('\n').slice(-3).join(' / ');

      handle.exitNoted = true;
      notes.push(`${handle.label} exited during the run${tail === '' ? '' : `: ${tail}`}`);
    }
  }
}

async function runStep(step, key, path, round, results, notes) {
  let outcome;

  try {
    outcome = await step.run(path);
  } catch (err) {
    outcome = { values: {}, note: err.message.split('\n')[0] };
  }

  for (const figure of step.figures) {
    results[figure] ??= {};
    results[figure][key] ??= [];
    results[figure][key].push(outcome.values[figure] ?? NaN);
  }
  if (outcome.note !== undefined)
    notes.push(`round ${round + 1}, ${PATH_LABELS[key]}: ${outcome.note}`);
}

function printTable(config, outcome, rows, checks, skipped) {
  const out = [
    '',
    `porthole bench${config.quick ? ' --quick' : ''}: ${outcome.roundsRun} rounds, paths interleaved;` +
      ' each cell median ±half-IQR over rounds, ×ratio to direct (counts: sum over rounds)',
    '',
    textTable(rows),
    '',
    'targets (informational):',
    ...verdictLines(checks),
  ];

  for (const [key, why] of Object.entries(skipped)) out.push(`skipped ${PATH_LABELS[key]}: ${why}`);
  if (outcome.notes.length > 0) out.push('', 'notes:', ...outcome.notes.map((n) => `  ${n}`));
  process.stdout.write(`${out.join('\n')}\n\n`);
}

// `run` holds the summary and what the report says about the run: its rounds, notes, time and
// the machine's load as it began.
function writeReport(run) {
  const { figures, summary, pathKeys, roundsRun } = run;
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const caption = `npm run bench, ${when}: medians of ${roundsRun} rounds; ×1 is direct (client straight to the server)`;

  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    join(RESULTS_DIR, 'ratios.svg'),
    ratioChart(
      figures,
      summary,
      pathKeys.filter((key) => key !== 'direct'),
      caption,
    ),
  );
  writeFileSync(
    join(RESULTS_DIR, 'latest.md'),
    markdownReport({
      ...run,
      config: { ...run.config, rounds: roundsRun },
      build: buildDescription(ROOT),
      sshVersion: sshVersion(),
      when,
    }),
  );
  process.stderr.write(`bench: wrote ${join(RESULTS_DIR, 'latest.md')} and ratios.svg\n`);
}

function sshVersion() {
  // ssh -V prints its version on standard error.
  const result = spawnSync('ssh', ['-V'], { encoding: 'utf8', timeout: 5000 });

  return result.stderr?.trim() || 'ssh: not found';
}

main().catch((err) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }

  process.stderr.write(`bench: ${err.stack ?? err}\n`);
  process.exit(1);
});
