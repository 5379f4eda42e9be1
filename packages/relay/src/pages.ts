import type { AgentRecord } from './agent-record.js';
import { esc } from './status-view.js';

/**
 * Short HTML answers for the browser, written straight onto a connection. They say what went
 * wrong in the user's terms, what is connected, and what to try; they never echo the request.
 */
const STATUS_TEXT: Record<number, string> = {
  408: 'Request Timeout',
  421: 'Misdirected Request',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** What is connected, for an error page: each container and the ports carried into it. */
export function describeAgents(records: Iterable<AgentRecord>): string[] {
  const lines: string[] = [];

  for (const record of records) {
    const ports = [...record.ports.values()]
      .filter((p) => p.status === 'mirrored')
      .map((p) =>
        p.hostPort === p.containerPort ? `${p.hostPort}` : `${p.hostPort}→${p.containerPort}`,
      );
    const state = record.connected ? 'connected' : 'reconnecting';

    lines.push(
      `container "${record.name}" (${state}): ${ports.length > 0 ? `ports ${ports.join(', ')}` : 'no ports'}`,
    );
  }

  return lines.length > 0 ? lines : ['No container is connected to this relay.'];
}

export interface Page {
  status: number;
  title: string;
  detail: string;
  hint?: string;
  context?: string[];
}

/** The HTML body of an error page. */
export function pageBody({ title, detail, hint, context }: Page): string {
  const items = (context ?? []).map((line) => `<li>${esc(line)}</li>`).join('');

  return (
    '<!doctype html><meta charset="utf-8"><title>porthole: ' +
    esc(title) +
    '</title><body style="font:16px system-ui,sans-serif;max-width:44em;margin:3em auto">' +
    `<h1>${esc(title)}</h1><p>${esc(detail)}</p>` +
    (hint === undefined ? '' : `<p>${esc(hint)}</p>`) +
    (items === '' ? '' : `<ul>${items}</ul>`) +
    '</body>\n'
  );
}

/** A whole HTTP/1.1 response carrying an error page, ending the connection. */
export function errorResponse(page: Page): string {
  const body = pageBody(page);

  return (
    `HTTP/1.1 ${page.status} ${STATUS_TEXT[page.status] ?? 'Error'}\r\n` +
    'Content-Type: text/html; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Cache-Control: no-store\r\n' +
    'Connection: close\r\n\r\n' +
    body
  );
}
