// Reads the CPU profiles that `node --cpu-prof` wrote and lists where each process spent its own
// (self) time, which points at what to make cheaper.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Top `limit` functions by self time for every profile under `dir/<process>/`. Returns
 * [{ process, activeMs, top: [{ name, where, ms, share }] }], share being of the busy time.
 */
export function summarizeProfiles(dir, limit = 12) {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) =>
      readdirSync(join(dir, entry.name))
        .filter((file) => file.endsWith('.cpuprofile'))
        .map((file) => ({ process: entry.name, ...selfTimes(join(dir, entry.name, file), limit) })),
    );
}

/** The summary as text lines. */
export function profileLines(summaries) {
  return summaries.flatMap((s) => [
    `${s.process}: ${s.activeMs.toFixed(0)} ms busy`,
    ...s.top.map(
      (f) =>
        `  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.ms.toFixed(0).padStart(6)} ms  ${f.name}  ${f.where}`,
    ),
  ]);
}

function selfTimes(file, limit) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map();

  // Each sample stands for the time until the next one.
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const key = frameKey(byId.get(id).callFrame);

    totals.set(key, (totals.get(key) ?? 0) + ms);
  });
  totals.delete('(idle)\t');

  const activeMs = [...totals.values()].reduce((a, b) => a + b, 0);
  const top = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, ms]) => {
      const [name, where] = key.split('\t');

      return { name, where, ms, share: activeMs > 0 ? ms / activeMs : 0 };
    });

  return { activeMs, top };
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
