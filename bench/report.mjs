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
 * The targets porthole aims at, each judged on the medians: { text, met } where met is true,
 * false, or null when a column it needs is missing. They inform; they never fail the run.
 */
export function verdict(summary, config) {
  const v = (figure, path) => summary[figure]?.[path]?.value ?? NaN;
  const checks = [];
  const check = (text, unit, porthole, op, bound) => {
    const known = Number.isFinite(porthole) && Number.isFinite(bound);
    const met = known ? (op === '≥' ? porthole >= bound : porthole <= bound) : null;
    const needs = `porthole ${formatNumber(porthole)} ${unit}, needs ${op} ${formatNumber(bound)}`;

    checks.push({
      text: `${text} (${needs}${met === false ? shortfall(porthole, op, bound) : ''})`,
      met,
    });
  };

  for (const way of ['download', 'upload']) {
    const porthole = v(way, 'porthole');

    check(`${way} ≥ 0.9× two plain hops`, 'MiB/s', porthole, '≥', 0.9 * v(way, 'hops'));
    check(`${way} ≥ 0.4× direct`, 'MiB/s', porthole, '≥', 0.4 * v(way, 'direct'));
    check(`${way} ≥ 2× ssh -R`, 'MiB/s', porthole, '≥', 2 * v(way, 'ssh'));
  }
  check('latency p50 ≤ ssh -R', 'ms', v('p50', 'porthole'), '≤', v('p50', 'ssh'));
  check('latency p50 ≤ direct + 1 ms', 'ms', v('p50', 'porthole'), '≤', v('p50', 'direct') + 1);
  check('latency p99 ≤ 3× direct', 'ms', v('p99', 'porthole'), '≤', 3 * v('p99', 'direct'));
  check(
    `${config.concurrency[1]} concurrent without errors`,
    'errors',
    v('manyErrors', 'porthole'),
    '≤',
    0,
  );
  check('relay memory per idle agent ≤ 64 KiB', 'KiB', v('fleetMemory', 'porthole'), '≤', 64);
  check('agent idle RSS ≤ 50 MiB', 'MiB', v('agentRss', 'porthole'), '≤', 50);
  check('agent connected ≤ 300 ms after start', 'ms', v('startMs', 'porthole'), '≤', 300);
  check('listen() → mirrored ≤ 250 ms, p50', 'ms', v('detect', 'porthole'), '≤', 250);

  return checks;
}

// How far a missed target is: ": 12% short" of a lower bound, ": 12% over" an upper one.
function shortfall(value, op, bound) {
  if (bound === 0) return '';

  const off = Math.abs(value - bound) / Math.abs(bound);

  return `: ${Math.round(off * 100)}% ${op === '≥' ? 'short' : 'over'}`;
}

/** The verdict as text lines. */
export function verdictLines(checks) {
  return checks.map((c) => `  ${verdictWord(c.met).padEnd(7)}  ${c.text}`);
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
    `Run ${when} with \`pnpm bench\`: ${config.rounds} rounds in ${elapsedS.toFixed(0)} s.`,
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
    ...checks.map((c) => `- **${verdictWord(c.met)}**: ${c.text}`),
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
    '- A warm-up pass over every path comes first and is not counted, so that the JIT has ' +
      'compiled the hot code of every Node process. Then rounds interleave the paths: each ' +
      'measurement runs on every path before the next one starts, and the order of the paths ' +
      'rotates from round to round, so that drift of the machine hits all paths alike.',
    `- Latency: ${config.sequential} sequential GETs of a 31-byte body over one keep-alive ` +
      'connection after 20 warm-up requests; p50 and p99 per round.',
    `- Throughput: one ${mib} MiB download and one ${mib} MiB upload per round, from request to ` +
      'last byte; byte counts are checked and a transfer with a wrong count has no figure.',
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
      "are not available: on the host's loopback, the relay mirroring on 127.0.0.2); a helper in " +
      'the same namespace listens on a port the host has free; the time from its listen() ' +
      'callback to the port listed as mirrored in `/api/agents` (polled every 5 ms), over ' +
      `${config.detectTrials} trials, each listener closed and gone from the list before the next.`,
  ];
}
