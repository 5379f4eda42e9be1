import { createHash } from 'node:crypto';

import type { StatusSnapshot } from './status-snapshot.js';
import { clock, esc, renderStatus, STATUS_VIEW_SOURCE } from './status-view.js';

const STYLE = `
:root { color-scheme: light dark; --fg: #1d2327; --muted: #646970; --line: #dcdcde;
  --bg: #fff; --panel: #f6f7f7; --ok: #00703c; --warn: #8a5a00; --bad: #b32d2e; --idle: #50575e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e6e6; --muted: #a7aaad; --line: #3c434a;
  --bg: #1d2327; --panel: #262c32; --ok: #4ab866; --warn: #dba617; --bad: #f86368; --idle: #a7aaad; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1.25rem; }
header { display: flex; align-items: baseline; gap: 1rem; padding-top: 1.25rem;
  border-bottom: 1px solid var(--line); padding-bottom: .75rem; }
h1 { font-size: 1.35rem; margin: 0; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
h2 small { color: var(--muted); font-weight: normal; margin-left: .35rem; }
h3 { font-size: 1rem; margin: 0 0 .15rem; }
.agent { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: .75rem 1rem; margin-bottom: .75rem; }
.meta { margin: 0 0 .5rem; color: var(--muted); font-size: .9rem; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th { text-align: left; font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line); }
th, td { padding: .3rem .6rem .3rem 0; vertical-align: middle; }
tbody tr + tr td { border-top: 1px solid var(--line); }
td.num { font-variant-numeric: tabular-nums; }
code { font: .85rem ui-monospace, monospace; }
small { color: var(--muted); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem;
  border: 1px solid currentColor; white-space: nowrap; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.idle { color: var(--idle); }
.empty { color: var(--muted); margin: .25rem 0; }
.live.on::before { content: "● "; color: var(--ok); }
.live.off::before { content: "● "; color: var(--bad); }
button { font: inherit; font-size: .85rem; padding: .1rem .6rem; cursor: pointer; }
footer { color: var(--muted); font-size: .85rem; margin-top: 2rem; padding-bottom: 2rem; }
a { color: inherit; }
`;

// Draws every snapshot that /events sends and keeps the "… ago" times current; the button of
// a login asks the relay to open its page again without leaving this page.
const SCRIPT = `${STATUS_VIEW_SOURCE}
(() => {
  const main = document.getElementById('status');
  const live = document.getElementById('live');
  let offset = 0;
  const events = new EventSource('/events');

  events.onmessage = (event) => {
    const snapshot = JSON.parse(event.data);

    offset = Date.parse(snapshot.now) - Date.now();
    main.innerHTML = renderStatus(snapshot);
    live.textContent = 'live';
    live.className = 'live on';
  };
  events.onerror = () => {
    live.textContent = 'reconnecting…';
    live.className = 'live off';
  };
  setInterval(() => {
    for (const time of document.querySelectorAll('time[data-at]')) {
      time.textContent = ago(time.dataset.at, Date.now() + offset);
    }
  }, 1000);
  document.addEventListener('submit', async (event) => {
    const form = event.target;
    const button = form.querySelector('button');

    event.preventDefault();
    button.disabled = true;

    const res = await fetch(form.action, { method: 'POST', headers: { accept: 'application/json' } })
      .catch(() => null);

    button.textContent = res !== null && res.ok ? 'Asked the relay again' : 'Could not ask';
  });
})();
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

/**
 * Headers for the page: only its own inline style and script run, it talks only to its own
 * origin, and no other site may frame it (its button opens a login page).
 */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    `default-src 'none'; style-src ${sha256(STYLE)}; script-src ${sha256(SCRIPT)}; ` +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** The whole status page, drawn on the server from `snapshot`. */
export function statusPage(snapshot: StatusSnapshot): string {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>porthole relay</title><style>${STYLE}</style></head><body>` +
    `<header><h1>porthole relay</h1><p>${esc(snapshot.version)} · ` +
    `<span id="live" class="live">snapshot of ${esc(clock(snapshot.now))}</span></p></header>` +
    `<main id="status">${renderStatus(snapshot)}</main>` +
    '<footer>Requests show their path and the names of their query parameters; values, ' +
    'tokens, codes and cookies never appear here. <a href="/metrics">Metrics</a></footer>' +
    `<script>${SCRIPT}</script></body></html>\n`
  );
}
