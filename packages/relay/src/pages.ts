/**
 * Short HTML answers for the browser, written straight onto a mirrored connection. They say
 * what went wrong in the user's terms and never echo the request.
 */
const STATUS_TEXT: Record<number, string> = {
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole HTTP/1.1 response carrying a small error page, ending the connection. */
export function errorResponse(status: number, title: string, detail: string): string {
  const body =
    '<!doctype html><meta charset="utf-8"><title>porthole: ' +
    escapeHtml(title) +
    '</title><body style="font:16px system-ui,sans-serif;max-width:40em;margin:3em auto">' +
    `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p></body>\n`;

  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
    'Content-Type: text/html; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Cache-Control: no-store\r\n' +
    'Connection: close\r\n\r\n' +
    body
  );
}
