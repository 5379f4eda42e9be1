/**
 * The status page's markup, drawn from a snapshot. The same functions draw the page on the
 * server (the page works without JavaScript) and in the browser (the page's script is their
 * source text, see `STATUS_VIEW_SOURCE`), so the two never drift apart. That is why each
 * function here uses only the others and the language's built-ins, and escapes every value.
 */
import type { RequestView } from './carried-requests.js';
import type { AgentView, LoginView, PortView, StatusSnapshot } from './status-snapshot.js';

/** Escapes text for HTML content and attribute values. */
export function esc(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** How long ago `iso` was, in words a person reads at a glance. */
export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));

  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;

  return `${Math.floor(s / 86400)} d ago`;
}

/** A `<time>` element that the page's script keeps current. */
export function since(iso: string, now: number): string {
  return `<time datetime="${esc(iso)}" data-at="${esc(iso)}">${esc(ago(iso, now))}</time>`;
}

/** The time of day of `iso` (HH:MM:SS, local). */
export function clock(iso: string): string {
  const d = new Date(iso);

  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
}

/** A small coloured label; `tone` is ok, warn, bad or idle. */
export function badge(text: string, tone: string): string {
  return `<span class="badge ${tone}">${esc(text)}</span>`;
}

/** A table with a head row, or a line saying there is nothing to list. */
export function table(kind: string, heads: string[], rows: string[], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${esc(empty)}</p>`;

  const head = heads.map((h) => `<th>${esc(h)}</th>`).join('');

  return `<table class="${kind}"><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** One port of an agent, as a table row. */
export function portRow(port: PortView): string {
  const tone = port.status === 'mirrored' ? 'ok' : 'bad';
  const detail = port.detail === null ? '' : ` <small>${esc(port.detail)}</small>`;
  const where = port.addresses.length > 0 ? port.addresses.join(', ') : '—';

  return (
    `<tr data-port="${esc(port.hostPort)}"><td class="num">${esc(port.containerPort)}</td>` +
    `<td>${esc(where)}</td><td>${badge(port.status, tone)}${detail}</td>` +
    `<td>${esc(port.why.join(', '))}</td></tr>`
  );
}

/** One agent with its ports. */
export function agentCard(agent: AgentView, now: number): string {
  const tone = agent.status === 'connected' ? 'ok' : 'warn';
  const from = agent.address === null ? '' : ` · from ${esc(agent.address)}`;
  const ports = table(
    'ports',
    ['Container port', 'On this machine', 'Status', 'Why'],
    agent.ports.map((port) => portRow(port)),
    'No port carried yet.',
  );

  return (
    `<article class="agent" data-agent="${esc(agent.name)}"><h3>${esc(agent.name)} ` +
    `${badge(agent.status, tone)}</h3><p class="meta">${esc(agent.status)} ` +
    `${since(agent.since, now)}${from}</p>${ports}</article>`
  );
}

/** One login waiting for its callback, with the button that opens its page again. */
export function loginRow(login: LoginView, now: number): string {
  const reopen =
    login.site === null
      ? ''
      : `<form method="post" action="/api/logins/${esc(login.id)}/open">` +
        '<button type="submit">Open the page again</button></form>';

  return (
    `<tr data-login="${esc(login.id)}"><td>${esc(login.agent)}</td>` +
    `<td>${esc(login.site ?? '—')}</td><td class="num">${esc(login.port)}</td>` +
    `<td><code>${esc(login.path)}</code></td><td>${since(login.since, now)}</td>` +
    `<td>${reopen}</td></tr>`
  );
}

/** What became of a request, in a word or two, and how it reads. */
export function outcome(request: RequestView): [text: string, tone: string] {
  const words: Record<string, string> = {
    refused: 'nothing listening',
    forbidden: 'not carried',
    no_container: 'no container',
    wrong_host: 'wrong host',
    agent_away: 'container away',
    too_large: 'too large',
    failed: 'failed',
    no_answer: 'no answer',
  };
  const code = request.status === null ? '' : `${request.status} `;

  if (request.result === null) return [request.agent === null ? 'arriving' : 'waiting', 'idle'];
  if (request.result !== 'delivered') return [code + (words[request.result] ?? ''), 'bad'];
  if (request.status === null) return ['carried', 'ok'];

  return [String(request.status), request.status < 400 ? 'ok' : 'warn'];
}

/** One request carried or refused, as a table row. */
export function requestRow(request: RequestView): string {
  const [text, tone] = outcome(request);
  const port =
    request.containerPort === null || request.containerPort === request.port
      ? String(request.port)
      : `${request.port} → ${request.containerPort}`;
  const line = request.method === null ? '(connection)' : `${request.method} ${request.path ?? ''}`;
  const ms =
    request.ms === null
      ? '…'
      : request.ms < 1000
        ? `${request.ms} ms`
        : `${(request.ms / 1000).toFixed(1)} s`;

  return (
    `<tr data-result="${esc(request.result ?? 'pending')}"><td>${esc(clock(request.at))}</td>` +
    `<td>${esc(request.agent ?? '—')}</td><td class="num">${esc(port)}</td>` +
    `<td><code>${esc(line)}</code></td><td>${badge(text, tone)}</td>` +
    `<td class="num">${esc(ms)}</td></tr>`
  );
}

/** The page's body below its header: containers, logins and requests. */
export function renderStatus(snapshot: StatusSnapshot): string {
  const now = Date.parse(snapshot.now);
  const { agents, logins, requests } = snapshot;
  const cards = agents.map((agent) => agentCard(agent, now)).join('');
  const noAgents =
    '<p class="empty">No container is connected. Start <code>porthole-agent</code> in one, ' +
    'with a token from <code>porthole-relay token --name NAME</code>.</p>';
  const loginTable = table(
    'logins',
    ['Container', 'Provider', 'Port', 'Callback path', 'Started', ''],
    logins.map((login) => loginRow(login, now)),
    'No login is waiting for its callback.',
  );
  const requestTable = table(
    'requests',
    ['Time', 'Container', 'Port', 'Request', 'Status', 'Answered in'],
    requests.map((request) => requestRow(request)),
    'No request carried yet.',
  );

  return (
    `<section id="agents"><h2>Containers <small>${agents.length}</small></h2>` +
    `${cards === '' ? noAgents : cards}</section>` +
    `<section id="logins"><h2>Logins waiting <small>${logins.length}</small></h2>${loginTable}</section>` +
    `<section id="requests"><h2>Recent requests <small>${requests.length}</small></h2>` +
    `${requestTable}</section>`
  );
}

/** The functions above as script text, for the browser to draw snapshots with. */
export const STATUS_VIEW_SOURCE = [
  esc,
  ago,
  since,
  clock,
  badge,
  table,
  portRow,
  agentCard,
  loginRow,
  outcome,
  requestRow,
  renderStatus,
]
  .map((fn) => fn.toString())
  .join('\n');
