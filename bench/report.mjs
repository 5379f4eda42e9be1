// Turns the rounds' values into the summary table, the verdict and the Markdown report.
import { spawnSync } from 'node:child_process';
import os from 'node:os';

import { PATH_LABELS } from './paths.mjs';
import { median, relativeSpread, sum } from './stats.mjs';

/**
 * One cell per figure and path: the median over rounds (or the sum, for error counts), the
 * spread, and the ratio to direct where both exist.
 */
export function summarize(figures, results, pathKeys) {
  const summary = {};

  for (const figure of figures) {
    summary[figure.key] = {};
    for (const path of pathKeys) {
      const values = results[figure.key]?.[path] ?? [];
      const value = figure.summary === 'sum' ? sum(values) : median(values);

      summary[figure.key][path] = {
        value: values.length === 0 ? NaN : value,
        spread: figure.summary === 'sum' ? NaN : relativeSpread(values),
      };
    }

    const direct = summary[figure.key].direct?.value;

    for (const path of pathKeys) {
      const cell = summary[figure.key][path];

      cell.ratio = figure.better !== undefined && path !== 'direct' ? cell.value / direct : NaN;
    }
  }

  return summary;
}

/** How many cells hold a value: the count on the closing line. */
export function countFigures(summary) {
  return Object.values(summary).reduce(
    (n, row) => n + Object.values(row).filter((cell) => Number.isFinite(cell.value)).length,
    0,
  );
}

/** The summary as rows of text cells: a header row, then one row per figure. */
export function tableRows(figures, summary, pathKeys) {
  const header = ['figure', 'unit', ...pathKeys.map((p) => PATH_LABELS[p])];
  const rows = figures.map((figure) => [
    figure.label,
    figure.unit,
    ...pathKeys.map((path) => formatCell(summary[figure.key][path])),
  ]);

  return [header, ...rows];
}

/** The table as aligned plain text for the terminal. */
export function textTable(rows) {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((row) => row[col].length)));

  return rows
    .map((row) =>
      row
        .map((cell, col) => cell.padEnd(widths[col]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The table in Markdown. */
export function markdownTable(rows) {
  const line = (row) => `| ${row.join(' | ')} |`;

  return [line(rows[0]), line(rows[0].map(() => '---')), ...rows.slice(1).map(line)].join('\n');
}

/** A number with as many decimals as its size deserves; an em dash for no value. */
export function formatNumber(value) {
  if (!Number.isFinite(value)) return '—';

  const size = Math.abs(value);

  if (size >= 100 || Number.isInteger(value)) return value.toFixed(0);
  if (size >= 10) return value.toFixed(1);
  if (size >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function formatCell(cell) {
  if (!Number.isFinite(cell.value)) return '—';

  const spread = Number.isFinite(cell.spread) ? ` ±${Math.round(cell.spread * 100)}%` : '';
  const ratio = Number.isFinite(cell.ratio) ? ` ×${cell.ratio.toFixed(2)}` : '';

  return `${formatNumber(cell.value)}${spread}${ratio}`;
}

/**
 * The targets porthole aims at, each judged on the medians: { text, met, why } where met is
 * true, false, or null when a column it needs is missing, and `why` says, for a missed target,
 * what in this run's figures holds porthole back. They inform; they never fail the run.
 */
export function verdict(summary, config) {
  const v = (figure, path) => summary[figure]?.[path]?.value ?? NaN;
  const checks = [];
  const check = (text, unit, porthole, op, bound, why = () => null) => {
    const known = Number.isFinite(porthole) && Number.isFinite(bound);
    const met = known ? (op === '≥' ? porthole >= bound : porthole <= bound) : null;
    const needs = `porthole ${formatNumber(porthole)} ${unit}, needs ${op} ${formatNumber(bound)}`;

    checks.push({
      text: `${text} (${needs}${met === false ? shortfall(porthole, op, bound) : ''})`,
      met,
      why: met === false ? (why() ?? 'nothing measured in this run explains it') : null,
    });
  };
  const explain = explanations(v);

  for (const way of ['download', 'upload']) {
    const porthole = v(way, 'porthole');
    const bounds = [
      ['0.9× two plain hops', 0.9 * v(way, 'hops')],
      ['0.4× direct', 0.4 * v(way, 'direct')],
      ['2× ssh -R', 2 * v(way, 'ssh')],
    ];

    for (const [name, bound] of bounds) {
      check(`${way} ≥ ${name}`, 'MiB/s', porthole, '≥', bound, () =>
        explain.throughput(way, name, bound),
      );
    }
  }
  check('latency p50 ≤ ssh -R', 'ms', v('p50', 'porthole'), '≤', v('p50', 'ssh'), () =>
    explain.p50('ssh'),
  );
  check(
    'latency p50 ≤ direct + 1 ms',
    'ms',
    v('p50', 'porthole'),
    '≤',
    v('p50', 'direct') + 1,
    () => explain.p50('hops'),
  );
  const p99Bound = 3 * v('p99', 'direct');

  check('latency p99 ≤ 3× direct', 'ms', v('p99', 'porthole'), '≤', p99Bound, () =>
    explain.p99(p99Bound),
  );
  check(
    `${config.concurrency[1]} concurrent without errors`,
    'errors',
    v('manyErrors', 'porthole'),
    '≤',
    0,
    () => 'the notes from the run give the first error of each failed round',
  );
  check('relay memory per idle agent ≤ 64 KiB', 'KiB', v('fleetMemory', 'porthole'), '≤', 64);
  check('agent idle RSS ≤ 50 MiB', 'MiB', v('agentRss', 'porthole'), '≤', 50, () =>
    explain.bareNode('agentRss', 'MiB', 'resident after the same idle pause'),
  );
  check('agent connected ≤ 300 ms after start', 'ms', v('startMs', 'porthole'), '≤', 300, () =>
    explain.bareNode('startMs', 'ms', 'from spawn to listening'),
  );
  check('listen() → mirrored ≤ 250 ms, p50', 'ms', v('detect', 'porthole'), '≤', 250);

  return checks;
}

// What holds porthole back, each from figures of the same run; null where a figure it needs is
// missing. `v(figure, path)` is a median.
function explanations(v) {
  const n = (value) => formatNumber(value);
  const cores = os.cpus().length;
  const busy = (way) => {
    const porthole = v(`${way}Cores`, 'porthole');

    if (!Number.isFinite(porthole)) return '';
    return (
      `; during the ${way} the client, the server, the relay and the agent together kept ` +
      `${n(porthole)} of the ${cores} cores busy (two plain hops: ${n(v(`${way}Cores`, 'hops'))})` +
      (porthole >= 0.9 * cores ? ', so more speed has to come from less CPU time per byte' : '')
    );
  };
  const tunnelCpu = () => {
    const cpu = (path) => v('seqCpu', path);

    if (!Number.isFinite(cpu('porthole'))) return null;
    return (
      `per sequential request the relay and the agent ran ${n(cpu('porthole'))} µs on a CPU, ` +
      `the two plain proxies ${n(cpu('hops'))} µs` +
      (Number.isFinite(cpu('ssh')) ? `, sshd and ssh ${n(cpu('ssh'))} µs` : '') +
      ': a sequential request waits for each hop’s work in turn'
    );
  };
  const tail = (path) => {
    const [ms, run, wait] = ['tailMs', 'tailRun', 'tailWait'].map((figure) => v(figure, path));

    if (![ms, run, wait].every(Number.isFinite)) return null;
    return (
      `${n(ms)} ms on average, of which the processes ran ${n(run)} ms in all and waited ` +
      `${n(wait)} ms for a CPU (added up over the processes)`
    );
  };

  return {
    throughput(way, name, bound) {
      const hops = v(way, 'hops');
      const porthole = v(way, 'porthole');

      if (!Number.isFinite(hops)) return null;
      if (hops < bound) {
        return (
          `${name} = ${n(bound)} MiB/s is above the ${n(hops)} MiB/s that two bare Node proxy ` +
          `hops reach here; porthole, two Node processes as well, carries ` +
          `${(porthole / hops).toFixed(2)}× what they do${busy(way)}`
        );
      }

      return (
        `two bare Node proxy hops reach ${n(hops)} MiB/s here, so the difference is the ` +
        `relay’s and agent’s own work${busy(way)}`
      );
    },
    p50(other) {
      const parts = [tunnelCpu()];

      if (other === 'ssh' && v('p50', 'hops') > v('p50', 'ssh')) {
        parts.push(`two bare Node proxy hops (p50 ${n(v('p50', 'hops'))} ms) are slower too`);
      }
      if (other === 'hops') parts.push(`two plain hops: p50 ${n(v('p50', 'hops'))} ms`);

      return parts.every((part) => part === null) ? null : parts.filter(Boolean).join('; ');
    },
    p99(bound) {
      const hops = v('p99', 'hops');
      const parts = [];

      if (Number.isFinite(hops)) {
        parts.push(
          `two bare Node proxy hops reach p99 ${n(hops)} ms here` +
            (hops > bound ? ', above the bound as well' : ''),
        );
      }

      const ours = tail('porthole');
      const theirs = tail('hops');

      if (ours !== null) {
        parts.push(
          'in the accounted pass the slowest 1% of requests through porthole (client, server, ' +
            `relay, agent) took ${ours}` +
            (theirs === null ? '' : `; through two plain hops they took ${theirs}`),
        );
      }

      return parts.length === 0 ? null : parts.join('; ');
    },
    bareNode(figure, unit, what) {
      const bare = v(figure, 'hops');

      if (!Number.isFinite(bare)) return null;
      return `a bare Node process (a fresh plain proxy) takes ${n(bare)} ${unit} ${what} here`;
    },
  };
}

// How far a missed target is: ": 12% short" of a lower bound, ": 12% over" an upper one.
function shortfall(value, op, bound) {
  if (bound === 0) return '';

  const percent = (Math.abs(value - bound) / Math.abs(bound)) * 100;

  return `: ${percent < 1 ? percent.toFixed(1) : Math.round(percent)}% ${op === '≥' ? 'short' : 'over'}`;
}

/** The verdict as text lines: a missed target has what holds it back on the line below. */
export function verdictLines(checks) {
  return checks.flatMap((c) => [
    `  ${verdictWord(c.met).padEnd(7)}  ${c.text}`,
    ...(c.why === null ? [] : [`           held back: ${c.why}`]),
  ]);
}

function verdictWord(met) {
  if (met === null) return 'n/a';
  return met ? 'met' : 'not met';
}

/** Which porthole was measured: the commit, and whether packages/ differed from it. */
export function buildDescription(root) {
  const git = (...args) =>
    spawnSync('git', ['-C', root, ...args], { encoding: 'utf8', timeout: 5000 });
  const head = git('rev-parse', '--short', 'HEAD');

  if (head.status !== 0) return 'porthole: not a git checkout, commit unknown';

  const dirty = git('status', '--porcelain', '--', 'packages').stdout.trim() !== '';

  return `porthole at commit ${head.stdout.trim()}${dirty ? ' with uncommitted changes under packages/' : ''}`;
}

/** What the machine is, for the report; `loadAtStart` is os.loadavg() as the run began. */
export function machineDescription(loadAtStart) {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';

  return [
    `${cpus.length} × ${model}`,
    `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB memory`,
    `${os.type()} ${os.release()} (${os.arch()})`,
    `Node ${process.version}`,
    `load average ${loadAverage(loadAtStart)} as the run began, ${loadAverage(os.loadavg())} as it` +
      ' ended (other work on the machine adds noise to all paths)',
  ];
}

function loadAverage(loads) {
  return loads.map((load) => load.toFixed(2)).join(' ');
}

// Facts of the design that every figure rests on; what this run measured stands under each
// missed target.
function heldBack() {
  return [
    'Every request and every byte crosses two processes that direct does not, the relay and the ' +
      'agent: each is woken by the kernel, reads from one socket and writes to another, and ' +
      'porthole adds its own frame header and a WebSocket header to each chunk it carries. The ' +
      `client, the server, the relay and the agent share this machine's ${os.cpus().length} ` +
      'cores, so the CPU time the tunnel needs is taken from the client and the server, and a ' +
      'sequential request waits for each hop in turn. The two plain hops do the same socket work ' +
      'without any framing: what they reach shows what two Node processes in the path cost here ' +
      "before any of porthole's own work.",
    '',
    '`npm run bench -- --profile` writes CPU profiles of the relay, the agent and the two plain ' +
      'proxies and lists where each spends its time, per small request and per 100 MiB.',
  ];
}

/** The whole Markdown report. */
export function markdownReport({
  build,
  loadAtStart,
  rows,
  checks,
  config,
  skipped,
  notes,
  sshVersion,
  when,
  elapsedS,
}) {
  const skippedLines = Object.entries(skipped).map(([p, why]) => `- ${PATH_LABELS[p]}: ${why}`);
  const noteLines = notes.length === 0 ? ['- none'] : notes.map((n) => `- ${n}`);

  return [
    '# porthole benchmark',
    '',
    `Run ${when} with \`npm run bench\`: ${config.rounds} rounds in ${elapsedS.toFixed(0)} s.`,
    '',
    `Measured ${build}.`,
    '',
    '## Machine',
    '',
    ...machineDescription(loadAtStart).map((line) => `- ${line}`),
    `- ${sshVersion}`,
    '',
    '## Results',
    '',
    'Each cell: median over rounds, ± half the interquartile range over rounds relative to the',
    'median, and × the ratio of that median to direct. Error and dropped-SYN counts are summed',
    'over all rounds. 1 MiB = 1,048,576 bytes.',
    '',
    markdownTable(rows),
    '',
    '![Ratios to direct](ratios.svg)',
    '',
    '## Targets',
    '',
    ...checks.map(
      (c) =>
        `- **${verdictWord(c.met)}**: ${c.text}${c.why === null ? '' : `. Held back: ${c.why}.`}`,
    ),
    '',
    '## What holds porthole back',
    '',
    ...heldBack(),
    '',
    '## Method',
    '',
    ...methodLines(config),
    ...(skippedLines.length > 0 ? ['', '## Skipped', '', ...skippedLines] : []),
    '',
    '## Notes from the run',
    '',
    ...noteLines,
    '',
  ].join('\n');
}

function methodLines(config) {
  const mib = config.transferBytes / 1024 ** 2;
  const [few, many] = config.concurrency;

  return [
    '- One process tree on one machine, everything on 127.0.0.1 with ports the OS chose. The ' +
      'client is node:http in the benchmark process; the server is a node:http server in its own ' +
      'process; every path ends at that same server.',
    '- Paths: **direct** (client → server); **two plain hops** (client → proxy → proxy → server, ' +
      'each proxy a Node process piping net sockets both ways: the practical floor for a tunnel ' +
      'made of two Node processes); **porthole** (client → relay mirror port → WebSocket → agent ' +
      '→ server, the real `porthole-relay` and `porthole-agent --map` processes, the agent as ' +
      'containers run it (the one-file bundle, `packages/agent/dist/porthole-agent.mjs`) with ' +
      '`--no-watch` where it has that flag, so that it carries the mapped port only); with ' +
      '`--baseline DIR` the same for the porthole built in checkout DIR; **ssh -R** ' +
      '(client → sshd forwarded port → ssh connection → `ssh -N -R` → server, OpenSSH defaults).',
    '- A warm-up pass over every path comes first and is not counted: ' +
      `${config.warmupSequential.toLocaleString('en-US')} ` +
      'sequential requests, then a shorter download, upload and burst of concurrent requests, so ' +
      "that the JIT has compiled the hot code of every Node process (the relay's and agent's CPU " +
      'time per small request was measured to settle only after 6,000 to 11,000 requests, that ' +
      'of the two plain proxies after 4,000 to 5,000). Then rounds interleave the paths: each ' +
      'measurement runs on every path before the next one starts, and the order of the paths ' +
      'rotates from round to round, so that drift of the machine hits all paths alike.',
    `- Latency: ${config.sequential} sequential GETs of a 31-byte body over one keep-alive ` +
      'connection after 20 warm-up requests; p50 and p99 per round. "Tunnel CPU per sequential ' +
      'request" is the CPU time of every thread of the tunnel\'s processes over those requests ' +
      '(from /proc/PID/task/TID/schedstat, read before the first and after the last) divided by ' +
      `their count. Then ${config.sequential} more with accounting: between two requests the ` +
      'client reads the scheduler statistics of the main thread of every process of the path ' +
      '(client, server and tunnel: time on a CPU and time runnable but waiting for one); the ' +
      '"accounted" rows are the mean time of the slowest 1% of these requests and the time all ' +
      'those processes spent on a CPU and waiting for one during them, each added up over the ' +
      'processes (on a sequential request they mostly take turns, but their times can overlap).',
    `- Throughput: one ${mib} MiB download and one ${mib} MiB upload per round, from request to ` +
      'last byte; byte counts are checked and a transfer with a wrong count has no figure. ' +
      '"CPU busy" is the CPU time of every thread of the client, the server and the tunnel during ' +
      'the transfer divided by its wall time: how many cores the path kept busy.',
    `- Concurrency: ${few} and ${many} GETs started at once, each on its own connection (an ` +
      'http.Agent with enough sockets); wall time until the last one settled. "SYNs dropped" ' +
      "counts the kernel's ListenOverflows during the burst: a listener's accept queue was full " +
      "(Node's backlog is 511, sshd's for a forwarded port 128) and the client's connect was " +
      'retried about a second later, which is what a wall time above a second shows.',
    '- Start and memory: each round starts a fresh tunnel process next to the running one and ' +
      "times spawn → ready; after an idle pause its VmRSS is read, and so is the relay side's. " +
      'porthole: agent until its mapping shows in `/api/agents`; relay process. ssh -R: ssh ' +
      'client until the forwarded port accepts; sshd and all its per-connection processes. Two ' +
      'plain hops: a fresh proxy until it listens (the cost of a bare Node process); the first ' +
      'proxy.',
    `- Many agents (porthole only, once per run): a fresh relay idles, its RSS is read, then ` +
      `${config.fleetAgents} agents connect to it from one helper process through the agent's ` +
      "library API (`TunnelClient`, one token per agent name, minted with the relay's key, at " +
      'most 50 handshakes in flight); wall time from the first dial to the last handshake. After ' +
      "a 2 s pause the relay's RSS growth divided by the agent count is the memory per idle " +
      'agent. Then one GET goes through a mapping that the last agent asked for (as `--map` ' +
      'does), on a connection of its own.',
    `- Port watcher (porthole only, once per run): an agent without \`--no-watch\` runs in a ` +
      'network namespace linked to the host by a veth pair, as in a container (where namespaces ' +
      "are not available: on the host's loopback, the relay mirroring on 127.0.0.2). Once it is " +
      'connected and has rested as long again, its CPU time (all threads) over a pause of ' +
      `${(config.idleMs * 3) / 1000} s is its idle CPU, and its VmRSS after that ` +
      'pause its idle RSS with the watcher on. Then a helper in ' +
      'the same namespace listens on a port the host has free; the time from its listen() ' +
      'callback to the port listed as mirrored in `/api/agents` (polled every 5 ms), over ' +
      `${config.detectTrials} trials, each listener closed and gone from the list before the next.`,
  ];
}
