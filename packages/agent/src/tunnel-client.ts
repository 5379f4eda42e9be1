import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

import {
  AGENT_PATH,
  bridge,
  CloseCodes,
  type ControlMessage,
  createNonce,
  type DecodedAgentToken,
  decodeAgentToken,
  encodeControlMessage,
  ErrorCodes,
  HANDSHAKE_TIMEOUT_MS,
  keepAlive,
  LOGIN_TTL_MS,
  MAX_MESSAGE_BYTES,
  MAX_PENDING_LOGINS,
  networkNamespaceId,
  parseControlMessage,
  PortholeError,
  type PortMapping,
  PROTOCOL_VERSION,
  ProtocolError,
  ResetReason,
  SocketReader,
  StreamSession,
  type TunnelStream,
  verifyRelayProof,
  WebSocketTransport,
} from '@porthole/shared';
import WebSocket from 'ws';

import { reconnectDelay } from './backoff.js';
import { dialLoopback } from './loopback-dialer.js';
import { type LoginCallback, loginCallbackOf } from './login-url.js';
import type { Logger } from './logger.js';
import { messages, tokenAdvice } from './messages.js';
import { askRelayProof } from './relay-proof.js';

export const AGENT_SOFTWARE = 'porthole-agent/0.1.0';

export interface TunnelClientOptions {
  /** `ws://` or `wss://` address of the relay. */
  relayUrl: string;
  token: string;
  mappings: PortMapping[];
  logger: Logger;
  /** Reads the listening ports afresh (the port watcher), for a port not seen listening yet. */
  rescan?: () => Promise<number[]>;
}

interface PendingLogin {
  callback: LoginCallback;
  expiresAt: number;
}

// The relay is the only peer on this hop and no browser sits on it, so the RFC 6455 mask
// (meant to protect browser-side proxies) buys nothing; an all-zero key makes ws skip it,
// which was most of the CPU spent per byte.
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Turns the relay address into the agents' endpoint URL. */
export function agentEndpoint(relayUrl: string): string {
  let url: URL;

  try {
    url = new URL(relayUrl);
  } catch {
    throw new PortholeError(ErrorCodes.INVALID_OPTION, `--relay "${relayUrl}" is not a URL`);
  }

  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';

  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new PortholeError(
      ErrorCodes.INVALID_OPTION,
      `--relay "${relayUrl}" must start with ws://, wss://, http:// or https://`,
    );
  }

  if (url.pathname === '/' || url.pathname === '') url.pathname = AGENT_PATH;

  return url.toString();
}

/**
 * The agent's end of the tunnel: dials the relay, proves nothing until the relay has proved
 * it holds the key the token pins, then serves the relay's streams on the container's
 * loopback. It redials with backoff until stopped, and gives up only when retrying cannot
 * help (token refused, relay impostor, replaced by a newer agent).
 */
export class TunnelClient {
  readonly #options: TunnelClientOptions;
  readonly #log: Logger;
  readonly #url: string;
  readonly #mappedPorts: Set<number>;
  readonly #logins = new Map<string, PendingLogin>();
  #listening: number[] = [];
  #pendingOpens: string[] = [];
  #token: DecodedAgentToken | undefined;
  #ws: WebSocket | undefined;
  /** The connection once the relay has proved itself; undefined while away. */
  #live: WebSocket | undefined;
  #session: StreamSession | undefined;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #preTokenCheck: AbortController | undefined;
  /** The relay said this agent shares its loopback (see WelcomeMessage). */
  #sameNetwork = false;
  #stopped = false;
  #settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #onConnected: (() => void) | undefined;

  constructor(options: TunnelClientOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#url = agentEndpoint(options.relayUrl);
    this.#mappedPorts = new Set(options.mappings.map((m) => m.containerPort));
  }

  /** Tells the relay which ports listen in the container now (the whole set). */
  setListeningPorts(ports: number[]): void {
    this.#listening = ports;

    if (this.#live !== undefined && !this.#sameNetwork) {
      this.#send(this.#live, { type: 'ports', ports });
    }
  }

  /**
   * Asks the relay to open `url` in the host's browser. An authorization URL's callback port
   * is registered first, so that the host listener exists before the browser comes back.
   */
  openUrl(url: string): void {
    const callback = loginCallbackOf(url);

    this.#pruneLogins();

    if (callback !== null && this.#logins.size < MAX_PENDING_LOGINS) {
      this.#logins.set(`${callback.port} ${callback.state ?? ''}`, {
        callback,
        expiresAt: Date.now() + LOGIN_TTL_MS,
      });
      this.#log.info({ port: callback.port }, messages.loginStarted(callback.port));
    }

    if (this.#live === undefined) {
      this.#log.warn(messages.openWhileAway());
      this.#pendingOpens.push(url);
      return;
    }

    if (callback !== null) {
      this.#send(this.#live, { type: 'register', ...callback });
    }

    this.#send(this.#live, { type: 'open', url });
  }

  // Whether the relay may open a stream to `port`: only ports the user mapped, ports seen
  // listening, or the callback port of a login in progress. A port that opened since the last
  // scan (a tool that started listening a moment ago) is looked up afresh.
  async #mayDial(port: number): Promise<boolean> {
    if (this.#mappedPorts.has(port) || this.#listening.includes(port)) return true;

    this.#pruneLogins();

    if ([...this.#logins.values()].some((login) => login.callback.port === port)) return true;

    return (await this.#options.rescan?.())?.includes(port) ?? false;
  }

  #pruneLogins(): void {
    const now = Date.now();

    for (const [key, login] of this.#logins) {
      if (login.expiresAt <= now) this.#logins.delete(key);
    }
  }

  // After each verified handshake the relay learns everything again: it may have restarted.
  #announce(ws: WebSocket): void {
    if (this.#options.mappings.length > 0) {
      this.#send(ws, { type: 'map', mappings: this.#options.mappings });
    }

    // On the relay's own loopback the relay carries no port under its own number: announcing
    // them all would only fill both logs with refusals.
    if (!this.#sameNetwork) this.#send(ws, { type: 'ports', ports: this.#listening });
    this.#pruneLogins();

    for (const { callback } of this.#logins.values()) {
      this.#send(ws, { type: 'register', ...callback });
    }

    for (const url of this.#pendingOpens.splice(0)) {
      this.#send(ws, { type: 'open', url });
    }
  }

  /** The agent's name, from its token (known once `run` has started). */
  get name(): string | undefined {
    return this.#token?.name;
  }

  /**
   * Runs until `stop` (resolves) or a failure that retrying cannot fix (rejects with a
   * PortholeError that says what to do). `onConnected` runs after each verified handshake.
   */
  async run(onConnected?: () => void): Promise<void> {
    this.#token = await decodeAgentToken(this.#options.token).catch((err: unknown) => {
      const code = err instanceof PortholeError ? err.code : ErrorCodes.TOKEN_INVALID;

      throw new PortholeError(code, tokenAdvice(code));
    });
    this.#onConnected = onConnected;

    return new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
      this.#connect();
    });
  }

  /** Closes the tunnel for good. */
  stop(): void {
    this.#finish();
  }

  #finish(err?: Error): void {
    if (this.#stopped) return;

    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#preTokenCheck?.abort();
    this.#session?.close();
    this.#ws?.close(CloseCodes.GOING_AWAY);

    if (err === undefined) this.#settle?.resolve();
    else this.#settle?.reject(err);
  }

  // Until the server at the relay's address has signed a fresh nonce with the key the token
  // pins, it is just whoever answers there: a program squatting on the port gets no token.
  #connect(): void {
    const token = this.#token as DecodedAgentToken;
    const nonce = createNonce();
    const check = new AbortController();

    this.#preTokenCheck = check;
    this.#log.debug({ relay: this.#url }, messages.connecting(this.#url));
    askRelayProof(this.#url, nonce, check.signal).then(
      (proof) => {
        if (this.#stopped) return;

        if (proof === null || !verifyRelayProof(token.relayKey, nonce, proof, 'pre-token')) {
          this.#finish(fatalError(CloseCodes.RELAY_PROOF));
          return;
        }

        this.#dial();
      },
      (err: NodeJS.ErrnoException) => {
        if (this.#stopped) return;

        const delay = this.#redialLater();

        this.#log.warn(messages.unreachable(this.#url, describeFailure(err), delay));
      },
    );
  }

  #dial(): void {
    const ws = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${this.#options.token}` },
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE_BYTES,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      generateMask: zeroMask,
    });
    const nonce = createNonce();
    let verified = false;
    let failure: string | undefined;

    this.#ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      failure = `the relay answered HTTP ${res.statusCode ?? 0}`;
      this.#refused(ws, res);
    });
    ws.on('upgrade', (res: IncomingMessage) => {
      this.#session = this.#createSession(ws, res.socket);
    });
    ws.on('open', () => {
      keepAlive(ws, () => this.#log.warn('the relay stopped answering pings'));
      this.#send(ws, {
        type: 'hello',
        version: PROTOCOL_VERSION,
        nonce,
        software: AGENT_SOFTWARE,
        ...networkField(),
      });
      // A server that upgrades and then says nothing must not hold the agent forever.
      const timer = setTimeout(() => {
        if (verified) return;

        failure = `no answer to the handshake within ${HANDSHAKE_TIMEOUT_MS / 1000} s`;
        ws.terminate();
      }, HANDSHAKE_TIMEOUT_MS);

      ws.once('close', () => clearTimeout(timer));
    });
    ws.on('message', (data: Buffer, isBinary) => {
      try {
        if (isBinary) {
          if (!verified) throw new ProtocolError(ErrorCodes.HANDSHAKE, 'stream before welcome');
          this.#session?.receive(data);
        } else {
          verified = this.#control(ws, parseControlMessage(data.toString('utf8')), nonce, verified);
        }
      } catch (err) {
        const known = err instanceof ProtocolError;

        this.#log.warn(
          { code: known ? err.code : ErrorCodes.INTERNAL },
          known ? messages.relayBrokeProtocol(err.message) : messages.internalError(String(err)),
        );
        ws.close(
          known ? err.closeCode : CloseCodes.INTERNAL,
          known ? err.code : ErrorCodes.INTERNAL,
        );
      }
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      failure ??= describeFailure(err);
    });
    ws.on('close', (code, reason) => this.#closed(ws, verified, code, reason.toString(), failure));
  }

  #createSession(ws: WebSocket, socket: Socket): StreamSession {
    return new StreamSession({
      transport: new WebSocketTransport(ws, socket),
      role: 'agent',
      onStream: (stream) => this.#serve(stream),
    });
  }

  #send(ws: WebSocket, message: ControlMessage): void {
    ws.send(encodeControlMessage(message));
  }

  // Handles a control message; returns whether the relay has proved itself.
  #control(ws: WebSocket, message: ControlMessage, nonce: string, verified: boolean): boolean {
    if (message.type === 'error') {
      // Until the server has proved the key, its words are not shown: an impostor could use
      // them to tell the user to do something. The close code that follows says enough.
      const code = message.code.replace(/[^A-Z0-9_]/g, '').slice(0, 64);

      if (verified) {
        this.#log.warn({ code }, messages.relayError(code, printable(message.message)));
      } else {
        this.#log.debug({ code }, messages.unprovenError(code));
      }

      return verified;
    }

    if (!verified) {
      if (message.type !== 'welcome') {
        throw new ProtocolError(ErrorCodes.HANDSHAKE, `expected welcome, got ${message.type}`);
      }

      this.#welcome(ws, message, nonce);
      return !this.#stopped;
    }

    if (message.type === 'mapped') {
      this.#mapped(message);
      return true;
    }

    throw new ProtocolError(ErrorCodes.CONTROL_INVALID, `relays do not send ${message.type}`);
  }

  #welcome(
    ws: WebSocket,
    message: Extract<ControlMessage, { type: 'welcome' }>,
    nonce: string,
  ): void {
    const token = this.#token as DecodedAgentToken;

    if (message.version !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        ErrorCodes.VERSION_MISMATCH,
        `relay speaks protocol ${message.version}`,
        CloseCodes.VERSION_MISMATCH,
      );
    }

    // Before this check the peer is just whoever answered on the relay's address. Failing it
    // means some other program holds that port: serve it nothing, and stop.
    if (!verifyRelayProof(token.relayKey, nonce, message.proof)) {
      ws.close(CloseCodes.RELAY_PROOF, ErrorCodes.RELAY_PROOF);
      this.#finish(fatalError(CloseCodes.RELAY_PROOF));
      return;
    }

    this.#attempt = 0;
    this.#live = ws;
    this.#log.info({ relay: this.#url }, messages.connected(token.name, this.#url));

    if (message.sameNetwork === true && !this.#sameNetwork) {
      this.#sameNetwork = true;
      this.#log.warn(messages.sameNetwork());
    }

    this.#announce(ws);
    this.#onConnected?.();
  }

  #mapped(message: Extract<ControlMessage, { type: 'mapped' }>): void {
    const { status, containerPort, hostPort, addresses, detail } = message;

    if (message.source === 'listening' && status === 'mirrored') {
      this.#log.info({ containerPort }, messages.listening(containerPort, addresses));
      return;
    }

    if (status === 'mirrored') {
      this.#log.info({ containerPort, hostPort }, messages.mirrored(containerPort, addresses));
    } else if (status === 'busy') {
      this.#log.warn({ containerPort, hostPort }, messages.mirrorBusy(containerPort, hostPort));
    } else {
      this.#log.warn(
        { containerPort, hostPort },
        messages.mirrorFailed(containerPort, hostPort, detail ?? 'unknown reason'),
      );
    }
  }

  #serve(stream: TunnelStream): void {
    const port = stream.port;

    stream.on('error', () => undefined);
    void this.#mayDial(port).then((allowed) => {
      if (!allowed) {
        this.#log.warn({ port }, messages.forbidden(port));
        stream.reset(ResetReason.FORBIDDEN);
        return;
      }

      const reader = new SocketReader(stream);

      dialLoopback(port, reader.onread).then(
        (socket) => {
          if (stream.destroyed) {
            socket.destroy();
            return;
          }

          bridge(socket, stream, undefined, reader);
        },
        (err: NodeJS.ErrnoException) => {
          const refused = err.code === 'ECONNREFUSED';

          this.#log.debug({ port, code: err.code }, messages.refused(port));
          stream.reset(refused ? ResetReason.REFUSED : ResetReason.UNREACHABLE);
        },
      );
    });
  }

  // The relay said no before upgrading. A 401 will not change by retrying; anything else
  // (a proxy's 502, a relay still starting) might.
  #refused(ws: WebSocket, res: IncomingMessage): void {
    if (res.statusCode !== 401) {
      res.resume();
      ws.terminate();
      return;
    }

    let body = '';

    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      body += chunk.slice(0, 512);
    });
    res.on('end', () => {
      let code: string = ErrorCodes.TOKEN_INVALID;

      try {
        code = String((JSON.parse(body) as { error?: unknown }).error ?? code);
      } catch {
        // Not our relay's JSON: keep the generic code.
      }

      this.#finish(new PortholeError(ErrorCodes.TOKEN_INVALID, tokenAdvice(code)));
      ws.terminate();
    });
  }

  #closed(ws: WebSocket, verified: boolean, code: number, reason: string, failure?: string): void {
    if (this.#ws === ws) {
      this.#session?.close();
      this.#session = undefined;
      this.#live = undefined;
    }

    if (this.#stopped) return;

    // Only the relay that proved its key may stop the agent for good; anyone may claim a
    // version mismatch, but that one the agent cannot get past by redialling anyway.
    const fatal = verified || code === CloseCodes.VERSION_MISMATCH ? fatalError(code) : undefined;

    if (fatal !== undefined) {
      this.#finish(fatal);
      return;
    }

    const delay = this.#redialLater();

    if (verified && code === CloseCodes.RELAY_SHUTDOWN) {
      // A relay that stops on purpose (a restart, an upgrade) is no failure of the agent's.
      this.#log.info({ code }, messages.relayStopping(delay));
    } else if (verified) {
      this.#log.warn({ code }, messages.lost(reason || `code ${code}`, delay));
    } else {
      this.#log.warn(messages.unreachable(this.#url, failure ?? reason ?? `code ${code}`, delay));
    }
  }

  // Schedules the next attempt after the backoff delay, and returns that delay.
  #redialLater(): number {
    const delay = reconnectDelay(this.#attempt);

    this.#attempt += 1;
    this.#retryTimer = setTimeout(() => this.#connect(), delay);

    return delay;
  }
}

// Close codes after which redialling cannot help.
const FATAL_CLOSES: Record<number, { code: PortholeError['code']; text: string }> = {
  [CloseCodes.REPLACED]: {
    code: ErrorCodes.REPLACED,
    text:
      'another agent connected to the relay with the same name, so this one stopped: give each ' +
      'container its own token (porthole-relay token --name NAME)',
  },
  [CloseCodes.VERSION_MISMATCH]: {
    code: ErrorCodes.VERSION_MISMATCH,
    text: 'the relay speaks another porthole protocol version: run the same release on both sides',
  },
  [CloseCodes.RELAY_PROOF]: {
    code: ErrorCodes.RELAY_PROOF,
    text:
      'the server at the relay address could not prove it is the relay that minted this token: ' +
      'either the token comes from another relay (or from before its key file was replaced), ' +
      'so mint a new one with "porthole-relay token --name NAME" on the relay\'s machine, or ' +
      'another program is listening on the relay port',
  },
};

function fatalError(closeCode: number): PortholeError | undefined {
  const fatal = FATAL_CLOSES[closeCode];

  return fatal === undefined ? undefined : new PortholeError(fatal.code, fatal.text);
}

let helloNetwork: { network?: string } | undefined;

// The agent's network namespace for its hello, read on the first dial only: a process does
// not change namespaces, and `porthole-agent open` never dials at all.
function networkField(): { network?: string } {
  if (helloNetwork === undefined) {
    const id = networkNamespaceId();

    helloNetwork = id === undefined ? {} : { network: id };
  }

  return helloNetwork;
}

// TLS failures come as OpenSSL codes; say what to do about the common one.
function describeFailure(err: NodeJS.ErrnoException): string {
  const code = err.code ?? err.message;

  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
    return `${code}: this container does not trust the relay's certificate; give its CA with NODE_EXTRA_CA_CERTS=FILE`;
  }

  return code;
}

// Text from the relay, made safe for a terminal: no control characters, bounded length.
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 300);
}
