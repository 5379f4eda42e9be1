import type { Duplex } from 'node:stream';

import {
  type AgentTokenClaims,
  CloseCodes,
  type ControlMessage,
  encodeControlMessage,
  ErrorCodes,
  HANDSHAKE_TIMEOUT_MS,
  keepAlive,
  parseControlMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  signRelayProof,
  StreamSession,
  type TunnelStream,
  WebSocketTransport,
} from '@porthole/shared';
import type { KeyObject } from 'node:crypto';
import type WebSocket from 'ws';

import type { Logger } from './logger.js';
import { messages } from './messages.js';

/** What an agent connection needs from the relay around it. */
export interface AgentConnectionHooks {
  privateKey: KeyObject;
  software: string;
  logger: Logger;
  /** The relay's own network namespace (networkNamespaceId), where it can tell. */
  network: string | undefined;
  onReady(connection: AgentConnection): void;
  onMessage(connection: AgentConnection, message: AgentMessage): void;
  onClose(connection: AgentConnection): void;
}

/** What an agent may send once connected. */
export type AgentMessage = Extract<ControlMessage, { type: 'map' | 'ports' | 'register' | 'open' }>;

const AGENT_MESSAGE_TYPES: ReadonlySet<string> = new Set(['map', 'ports', 'register', 'open']);

/**
 * One agent's WebSocket, from handshake to close: answers the agent's nonce with the relay's
 * signature, then carries streams and control messages until either side goes.
 */
export class AgentConnection {
  readonly name: string;
  readonly tokenId: string;
  readonly address: string;
  readonly connectedAt = new Date();
  readonly log: Logger;
  /**
   * The agent runs in the relay's own network namespace (on this machine, or in a container
   * with `--network host`): a mirror of its port P would be the very 127.0.0.1:P it dials.
   */
  sameNetwork = false;
  readonly #ws: WebSocket;
  readonly #hooks: AgentConnectionHooks;
  readonly #session: StreamSession;
  readonly #handshakeTimer: NodeJS.Timeout;
  #ready = false;
  #closed = false;

  constructor(
    ws: WebSocket,
    socket: Duplex,
    claims: AgentTokenClaims,
    address: string,
    hooks: AgentConnectionHooks,
  ) {
    this.name = claims.name;
    this.tokenId = claims.id;
    this.address = address;
    this.log = hooks.logger.child({ agent: claims.name });
    this.#ws = ws;
    this.#hooks = hooks;
    this.#session = new StreamSession({
      transport: new WebSocketTransport(ws, socket),
      role: 'relay',
    });

    this.#handshakeTimer = setTimeout(() => {
      this.fail(new ProtocolError(ErrorCodes.HANDSHAKE, 'no hello in time', CloseCodes.HANDSHAKE));
    }, HANDSHAKE_TIMEOUT_MS);

    ws.on('message', (data: Buffer, isBinary) => this.#receive(data, isBinary));
    ws.on('close', () => this.#onClose());
    ws.on('error', (err) =>
      this.log.debug({ err: { message: err.message } }, 'agent socket error'),
    );
    keepAlive(ws, () => this.log.warn(messages.agentSilent(this.name)));
  }

  /** Whether the handshake is done and streams may be opened. */
  get ready(): boolean {
    return this.#ready && !this.#closed;
  }

  /** Streams open right now. */
  get streamCount(): number {
    return this.#session.streamCount;
  }

  /** Opens a stream to `port` inside the container, or returns null when none can open. */
  openStream(port: number): TunnelStream | null {
    return this.ready && this.#session.canOpen ? this.#session.open(port) : null;
  }

  send(message: ControlMessage): void {
    if (!this.#closed) {
      this.#ws.send(encodeControlMessage(message));
    }
  }

  /** Closes the connection with a code and a line the agent can show its user. */
  close(code: number, reason: string, text?: string): void {
    if (this.#closed) {
      return;
    }

    if (text !== undefined) {
      this.send({ type: 'error', code: reason, message: text });
    }

    this.#ws.close(code, reason);
  }

  /** Closes the connection because the agent broke the protocol. */
  fail(err: ProtocolError): void {
    this.log.warn({ code: err.code }, messages.agentProtocolError(this.name, err.code));
    this.close(err.closeCode, err.code, err.message);
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#closed) {
      return;
    }

    try {
      if (isBinary) {
        if (!this.#ready) {
          throw new ProtocolError(ErrorCodes.HANDSHAKE, 'stream traffic before the handshake');
        }

        this.#session.receive(data);
      } else {
        this.#control(parseControlMessage(data.toString('utf8')));
      }
    } catch (err) {
      // One agent's trouble never takes the relay down for the others.
      this.fail(
        err instanceof ProtocolError
          ? err
          : new ProtocolError(
              ErrorCodes.INTERNAL,
              'the relay failed to handle a message',
              CloseCodes.INTERNAL,
            ),
      );

      if (!(err instanceof ProtocolError)) {
        this.log.error({ err: { message: String(err) } }, messages.internalError(this.name));
      }
    }
  }

  #control(message: ControlMessage): void {
    if (!this.#ready) {
      if (message.type !== 'hello') {
        throw new ProtocolError(ErrorCodes.HANDSHAKE, `expected hello, got ${message.type}`);
      }

      this.#hello(message);
      return;
    }

    if (!AGENT_MESSAGE_TYPES.has(message.type)) {
      throw new ProtocolError(ErrorCodes.CONTROL_INVALID, `agents do not send ${message.type}`);
    }

    this.#hooks.onMessage(this, message as AgentMessage);
  }

  #hello(message: Extract<ControlMessage, { type: 'hello' }>): void {
    if (message.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        ErrorCodes.VERSION_MISMATCH,
        `the relay speaks porthole protocol ${PROTOCOL_VERSION} and this agent speaks ` +
          `${message.version}: run the same porthole release on both sides`,
        CloseCodes.VERSION_MISMATCH,
      );
    }

    clearTimeout(this.#handshakeTimer);
    this.sameNetwork = message.network !== undefined && message.network === this.#hooks.network;
    this.send({
      type: 'welcome',
      version: PROTOCOL_VERSION,
      proof: signRelayProof(this.#hooks.privateKey, message.nonce),
      software: this.#hooks.software,
      ...(this.sameNetwork ? { sameNetwork: true } : {}),
    });
    this.#ready = true;
    this.#hooks.onReady(this);
  }

  #onClose(): void {
    if (this.#closed) {
      return;
    }

    this.#closed = true;
    clearTimeout(this.#handshakeTimer);
    this.#session.close();
    this.#hooks.onClose(this);
  }
}
