// A hand-written SVG bar chart of each path's ratio to direct: one panel for throughput (higher
// is better), one for times (lower is better), so that no panel mixes the two directions.
import { PATH_LABELS } from './paths.mjs';

const WIDTH = 760;
const LABEL_WIDTH = 220;
const BAR_AREA = 430;
const BAR_HEIGHT = 14;
const BAR_GAP = 3;
const GROUP_GAP = 14;
const PANEL_TITLE = 42;
const COLORS = { hops: '#8a8a8a', porthole: '#1f6fb4', baseline: '#8fb8de', ssh: '#c8452c' };

/**
 * The chart for `summary`; `pathKeys` are the paths other than direct that have columns, and
 * `caption` says which run it shows.
 */
export function ratioChart(figures, summary, pathKeys, caption) {
  const byKey = Object.fromEntries(figures.map((f) => [f.key, f]));
  const panels = [
    { title: 'Throughput, × direct (higher is better)', keys: ['download', 'upload'] },
    { title: 'Time, × direct (lower is better)', keys: ['p50', 'p99', 'fewWall', 'manyWall'] },
  ];
  const parts = [];
  let y = 40;

  parts.push(legend(pathKeys));
  for (const panel of panels) {
    const groups = panel.keys.map((key) => ({
      label: byKey[key].label,
      bars: pathKeys.map((path) => ({ path, ratio: summary[key][path]?.ratio ?? NaN })),
    }));
    const drawn = drawPanel(panel.title, groups, y);

    parts.push(drawn.svg);
    y += drawn.height + 20;
  }
  parts.push(`<text x="10" y="${y}" font-size="11" fill="#555">${escape(caption)}</text>`);
  y += 14;

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${y}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

// Entries side by side, each as wide as its label (about 7 px a character at this font size),
// so that a long label, such as an earlier build's commit, does not run into the next.
function legend(pathKeys) {
  let x = pathKeys.length > 3 ? 10 : LABEL_WIDTH;

  return pathKeys
    .map((path) => {
      const label = PATH_LABELS[path];
      const entry = [
        `<rect x="${x}" y="12" width="12" height="12" fill="${COLORS[path]}"/>`,
        `<text x="${x + 18}" y="22">${escape(label)}</text>`,
      ].join('');

      x += 18 + label.length * 7 + 24;

      return entry;
    })
    .join('\n');
}

function drawPanel(title, groups, top) {
  const ratios = groups.flatMap((g) => g.bars.map((b) => b.ratio)).filter(Number.isFinite);
  const scale = niceMax(Math.max(1, ...ratios));
  const x = (ratio) => LABEL_WIDTH + (Math.min(ratio, scale) / scale) * BAR_AREA;
  const groupHeight = groups[0].bars.length * (BAR_HEIGHT + BAR_GAP);
  const height = PANEL_TITLE + groups.length * (groupHeight + GROUP_GAP);
  const out = [`<text x="10" y="${top + 12}" font-weight="bold">${escape(title)}</text>`];

  const gridTop = top + PANEL_TITLE - 8;

  out.push(...gridLines(scale, x, gridTop, top + height));
  groups.forEach((group, g) => {
    const groupTop = top + PANEL_TITLE + g * (groupHeight + GROUP_GAP);

    out.push(`<text x="10" y="${groupTop + groupHeight / 2 + 4}">${escape(group.label)}</text>`);
    group.bars.forEach((bar, b) =>
      out.push(drawBar(bar, groupTop + b * (BAR_HEIGHT + BAR_GAP), x)),
    );
  });
  out.push(unityLine(x, gridTop, top + height));

  return { svg: out.join('\n'), height };
}

function drawBar(bar, y, x) {
  if (!Number.isFinite(bar.ratio)) {
    return `<text x="${LABEL_WIDTH + 4}" y="${y + BAR_HEIGHT - 3}" fill="#777">no value</text>`;
  }

  const end = x(bar.ratio);

  return [
    `<rect x="${LABEL_WIDTH}" y="${y}" width="${(end - LABEL_WIDTH).toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS[bar.path]}"/>`,
    `<text x="${(end + 4).toFixed(1)}" y="${y + BAR_HEIGHT - 3}">×${bar.ratio.toFixed(2)}</text>`,
  ].join('');
}

// Light vertical lines at round ratios, labelled above the panel.
function gridLines(scale, x, top, bottom) {
  const step = scale <= 2 ? 0.25 : scale <= 5 ? 0.5 : scale <= 10 ? 1 : Math.ceil(scale / 10);
  const lines = [];

  for (let r = 0; r <= scale + 1e-9; r += step) {
    const px = x(r).toFixed(1);

    lines.push(
      `<line x1="${px}" y1="${top}" x2="${px}" y2="${bottom}" stroke="#ddd"/>`,
      `<text x="${px}" y="${top - 2}" font-size="10" fill="#555" text-anchor="middle">${+r.toFixed(2)}</text>`,
    );
  }

  return lines;
}

// The line at ×1, direct itself, drawn over the bars so that it shows where a bar crosses it.
function unityLine(x, top, bottom) {
  const px = x(1).toFixed(1);

  return `<line x1="${px}" y1="${top}" x2="${px}" y2="${bottom}" stroke="#222" stroke-width="1.5" stroke-dasharray="4 3"/>`;
}

function niceMax(value) {
  const steps = [1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100];

  return steps.find((s) => s >= value * 1.05) ?? Math.ceil(value * 1.05);
}

function escape(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
