import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

import {
  AGENT_PATH,
  type AgentTokenClaims,
  ErrorCodes,
  MAX_MESSAGE_BYTES,
  PortholeError,
  verifyAgentToken,
} from '@porthole/shared';
import type { KeyObject } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';

import type { Logger } from './logger.js';
import { messages } from './messages.js';

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

  constructor(publicKey: KeyObject, log: Logger, accept: AcceptAgent) {
    this.#publicKey = publicKey;
    this.#log = log;
    this.#accept = accept;
  }

  /** Handles an HTTP upgrade request from any of the relay's servers. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);

    const path = (req.url ?? '').split('?', 1)[0];

    if (path !== AGENT_PATH) {
      reject(socket, 404, 'PORTHOLE_ERR_NOT_FOUND');
      return;
    }

    // Browsers always send Origin on a WebSocket upgrade and agents never do: refusing it stops
    // a web page (possibly reached through DNS rebinding) from talking to the relay.
    if (req.headers.origin !== undefined) {
      reject(socket, 403, 'PORTHOLE_ERR_ORIGIN');
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

        this.#log.warn({ code, address: req.socket.remoteAddress }, messages.agentRefused(code));
        reject(socket, 401, code);
      },
    );
  }

  close(): void {
    this.#wss.close();
  }

  async #authenticate(req: IncomingMessage): Promise<AgentTokenClaims> {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([\w.-]+)$/.exec(header);

    if (match === null) {
      throw new PortholeError(ErrorCodes.TOKEN_MISSING, 'no bearer token');
    }

    return verifyAgentToken(match[1] as string, this.#publicKey);
  }
}

function reject(socket: Duplex, status: number, code: string): void {
  const body = JSON.stringify({ error: code });
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found';

  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
