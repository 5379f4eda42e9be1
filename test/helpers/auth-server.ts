import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One authorization code handed out by the stand-in authorization server. */
export interface IssuedCode {
  code: string;
  state: string;
  clientId: string;
  redirectUri: string;
  responseMode: 'query' | 'form_post';
}

/**
 * An authorization server stand-in on the host's loopback: it "logs the user in" at once and
 * sends the browser back to the client's `redirect_uri`, by a 302 with the code in the query,
 * or (`response_mode=form_post`, as MSAL asks) by a page whose form posts code and state.
 */
export class AuthServer {
  readonly issued: IssuedCode[] = [];
  readonly #server: Server;
  #port = 0;

  private constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  /** Starts the server on 127.0.0.1 and a free port. */
  static async start(): Promise<AuthServer> {
    const auth = new AuthServer();

    await new Promise<void>((resolve, reject) => {
      auth.#server.once('error', reject);
      auth.#server.listen(0, '127.0.0.1', () => resolve());
    });
    auth.#port = (auth.#server.address() as AddressInfo).port;

    return auth;
  }

  /** The authorization endpoint, as a client is configured with it. */
  get authorizeUrl(): string {
    return `http://127.0.0.1:${this.#port}/authorize`;
  }

  /** The code issued for `state`, if the browser came by with it. */
  codeFor(state: string): IssuedCode | undefined {
    return this.issued.find((issued) => issued.state === state);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');

    if (req.method !== 'GET' || url.pathname !== '/authorize') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }

    const clientId = url.searchParams.get('client_id');
    const redirectUri = url.searchParams.get('redirect_uri');
    const state = url.searchParams.get('state');
    const responseMode = url.searchParams.get('response_mode') ?? 'query';

    if (
      clientId === null ||
      redirectUri === null ||
      state === null ||
      (responseMode !== 'query' && responseMode !== 'form_post')
    ) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid_request');
      return;
    }

    const code = randomBytes(16).toString('base64url');

    this.issued.push({ code, state, clientId, redirectUri, responseMode });

    if (responseMode === 'query') {
      const target = new URL(redirectUri);

      target.searchParams.set('code', code);
      target.searchParams.set('state', state);
      res.writeHead(302, { location: target.href, 'cache-control': 'no-store' }).end();
      return;
    }

    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(formPostPage(redirectUri, { code, state }));
  }
}

function formPostPage(action: string, fields: Record<string, string>): string {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escape(name)}" value="${escape(value)}">`)
    .join('');

  return (
    '<!doctype html><html><head><title>Signing in</title></head>' +
    `<body><form method="POST" action="${escape(action)}">${inputs}` +
    '<noscript><button type="submit">Continue</button></noscript></form>' +
    '<script>document.forms[0].submit();</script></body></html>'
  );
}

function escape(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('"', '&quot;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;');
}
