import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import {
  AGENT_PATH,
  type AgentTokenClaims,
  type ErrorCode,
  ErrorCodes,
  MAX_MESSAGE_BYTES,
  PortholeError,
  verifyAgentToken,
} from '@porthole/shared';
import type { KeyObject } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';

import { AuthFailureLimiter } from './auth-limiter.js';
import type { Logger } from './logger.js';
import { messages } from './messages.js';
import { NO_EVENTS, type RelayEvents } from './relay-events.js';

export type AcceptAgent = (
  ws: WebSocket,
  socket: Duplex,
  claims: AgentTokenClaims,
  address: string,
) => void;

/**
 * `GET /agent`: checks the agent's token before anything is upgraded, so an unauthenticated
 * client never gets a WebSocket, only a 401 with a code.
 */
export class AgentEndpoint {
  readonly #wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    clientTracking: false,
  });
  readonly #publicKey: KeyObject;
  readonly #log: Logger;
  readonly #accept: AcceptAgent;
  readonly #limiter = new AuthFailureLimiter();
  readonly #events: RelayEvents;

  constructor(
    publicKey: KeyObject,
    log: Logger,
    accept: AcceptAgent,
    events: RelayEvents = NO_EVENTS,
  ) {
    this.#publicKey = publicKey;
    this.#log = log;
    this.#accept = accept;
    this.#events = events;
  }

  /** Handles an HTTP upgrade request from any of the relay's servers. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);

    const path = (req.url ?? '').split('?', 1)[0];

    if (path !== AGENT_PATH) {
      reject(socket, 404, ErrorCodes.NOT_FOUND);
      return;
    }

    // Browsers always send Origin on a WebSocket upgrade and agents never do: refusing it stops
    // a web page (possibly reached through DNS rebinding) from talking to the relay.
    if (req.headers.origin !== undefined) {
      this.#events.authRefused(ErrorCodes.ORIGIN);
      reject(socket, 403, ErrorCodes.ORIGIN);
      return;
    }

    this.#authenticate(req).then(
      (claims) => {
        this.#wss.handleUpgrade(req, socket, head, (ws) => {
          this.#accept(ws, socket, claims, req.socket.remoteAddress ?? 'unknown');
        });
      },
      (err: unknown) => {
        const code = err instanceof PortholeError ? err.code : ErrorCodes.TOKEN_INVALID;

        this.#refuse(socket, code, req.socket.remoteAddress ?? 'unknown');
      },
    );
  }

  // Every failure is counted (and shows in /metrics); past the limit the address is asked to
  // wait, and only the failure that crossed the limit is logged for the rest of the window.
  #refuse(socket: Duplex, code: ErrorCode, address: string): void {
    const verdict = this.#limiter.fail(address);

    this.#events.authRefused(code);

    if (verdict.wait > 0) {
      if (verdict.log) {
        this.#log.warn(
          { code: ErrorCodes.TOO_MANY_FAILURES, address, failures: verdict.count },
          messages.agentRefused(ErrorCodes.TOO_MANY_FAILURES),
        );
      }

      reject(socket, 429, ErrorCodes.TOO_MANY_FAILURES, { 'Retry-After': String(verdict.wait) });
      return;
    }

    this.#log.warn(
      verdict.unlogged > 0 ? { code, address, unlogged: verdict.unlogged } : { code, address },
      messages.agentRefused(code),
    );
    reject(socket, 401, code);
  }

  close(): void {
    this.#wss.close();
  }

  async #authenticate(req: IncomingMessage): Promise<AgentTokenClaims> {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer +(\S+)$/i.exec(header);

    if (match === null) {
      throw new PortholeError(ErrorCodes.TOKEN_MISSING, 'no bearer token');
    }

    return verifyAgentToken(match[1] as string, this.#publicKey);
  }
}

const REASONS: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
};

function reject(
  socket: Duplex,
  status: number,
  code: string,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error: code });
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');

  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      extra +
      'Connection: close\r\n\r\n' +
      body,
  );
}
