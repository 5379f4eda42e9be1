import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import {
  bridge,
  describeTarget,
  ErrorCodes,
  FOLLOW_UP_MS,
  MAX_PENDING_CONNECTIONS,
  PortholeError,
  ResetReason,
  StreamResetError,
  type TunnelStream,
} from '@porthole/shared';

import type { AgentRecord } from './agent-record.js';
import { countRequestBytes, resultOfFailure, watchResponse } from './exchange-watch.js';
import type { Logger } from './logger.js';
import type { LoginBook } from './logins.js';
import { messages } from './messages.js';
import type { MirrorClaim, MirrorSet } from './mirrors.js';
import { describeAgents, errorResponse, type Page, pageBody } from './pages.js';
import { NO_EVENTS, type RelayEvents, type RequestTrace } from './relay-events.js';
import { closeAfterAnswer, isLoopbackHost, peekRequestHead, stateOf } from './request-head.js';

/** The path on the relay's own port that the original setup guide told users to register. */
export const FIXED_CALLBACK_PATH = '/oauth/callback';

// Headers that describe one hop, not the request: the relay's HTTP client sets its own.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

export interface RouterOptions {
  mirrors: MirrorSet<AgentRecord>;
  logins: LoginBook;
  agents: () => Iterable<AgentRecord>;
  holdMs: number;
  logger: Logger;
  /** Hears of every request, for the status page and the metrics. */
  events?: RelayEvents;
}

type Target = { claim: MirrorClaim<AgentRecord>; stream: TunnelStream; trace: RequestTrace };

/**
 * Sends each browser connection to exactly one container: the one that registered the
 * request's `state`, else the one that most recently announced the port. Never a broadcast,
 * never a request of the relay's own.
 */
export class Router {
  readonly #options: RouterOptions;
  readonly #log: Logger;
  readonly #events: RelayEvents;
  /** The relay's own port, whose /oauth/callback is routed like a mirror. */
  ownPort = 0;
  /** Per host port, the container that last received a request routed by its state. */
  readonly #lastByState = new Map<number, { owner: AgentRecord; at: number }>();
  /** Connections not yet routed, oldest first. */
  readonly #pending = new Set<Socket>();

  constructor(options: RouterOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#events = options.events ?? NO_EVENTS;
  }

  /** Carries a connection that arrived on a mirrored port. */
  async carryMirrored(socket: Socket, hostPort: number): Promise<void> {
    socket.on('error', () => undefined);

    // Connections not yet routed cost memory and carry nothing yet. Past the limit (a flood of
    // idle connections) the oldest waiting one is dropped: a browser sends its request at once
    // and is routed long before a flood's connections reach the front.
    if (this.#pending.size >= MAX_PENDING_CONNECTIONS) {
      const oldest = this.#pending.values().next().value;

      this.#pending.delete(oldest as Socket);
      oldest?.destroy();
    }

    this.#pending.add(socket);

    try {
      await this.#carryMirrored(socket, hostPort);
    } finally {
      this.#pending.delete(socket);
    }
  }

  async #carryMirrored(socket: Socket, hostPort: number): Promise<void> {
    // Silence is carried as plain TCP only where the user mapped the port by hand.
    const mapped = this.#options.mirrors
      .claims(hostPort)
      .some((c) => c.owner.ports.get(hostPort)?.sources.has('map') === true);
    const peeked = await peekRequestHead(socket, mapped);

    if (peeked.kind === 'closed') return;
    if (peeked.kind === 'timeout') {
      this.#answer(socket, {
        status: 408,
        title: 'Request too slow',
        detail: 'The request did not arrive in time.',
        hint: 'Reload the page to send it again.',
      });
      return;
    }
    if (peeked.kind === 'too-large') {
      this.#trace(hostPort, null, null, socket).settle('too_large', 431);
      this.#answer(socket, {
        status: 431,
        title: 'Request too large',
        detail: 'The request head is larger than porthole carries.',
        // Cookies that other local servers left on localhost are what usually makes it so.
        hint: 'Clear the cookies your browser keeps for localhost, then start the login again.',
      });
      return;
    }

    const head = peeked.kind === 'http' ? peeked.head : undefined;
    const trace = this.#trace(hostPort, head?.method ?? null, head?.target ?? null, socket);

    if (head !== undefined && !isLoopbackHost(head.host)) {
      this.#log.warn({ port: hostPort }, messages.wrongHost(hostPort));
      trace.settle('wrong_host', 421);
      this.#answer(socket, {
        status: 421,
        title: 'Not for this address',
        detail: `porthole answers on port ${hostPort} only to localhost, 127.0.0.1 and [::1].`,
        // No list of containers here: a page on a rebinding name can read this answer.
        hint: `Open it as http://localhost:${hostPort}/ followed by the same path.`,
      });
      return;
    }

    const target = await this.#open(hostPort, head?.state, trace, (page) =>
      this.#answer(socket, page),
    );

    if (target === null || socket.destroyed) {
      target?.stream.destroy();
      return;
    }

    this.#logRequest(
      target.claim,
      head === undefined ? 'a connection' : `${head.method} ${describeTarget(head.target)}`,
    );
    // On ports the user did not map by hand (a tool's callback listener, which containers may
    // share), each request gets a connection of its own.
    target.stream.write(
      peeked.kind === 'http' && !mapped ? closeAfterAnswer(peeked.bytes) : peeked.bytes,
    );
    this.#events.bytes.toContainer += peeked.bytes.length;
    this.#bridge(socket, target, peeked.kind === 'http');
    countRequestBytes(socket, this.#events.bytes);
    watchResponse(target.stream, trace, this.#events.bytes, head !== undefined);
  }

  /** Serves `/oauth/callback` on the relay's own port, routed like a mirrored request. */
  async carryFixed(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (page: Page) => sendPage(res, page);
    const trace = this.#trace(this.ownPort, req.method ?? 'GET', req.url ?? '/', res);

    if (!isLoopbackHost(req.headers.host)) {
      this.#log.warn({ port: this.ownPort }, messages.wrongHost(this.ownPort));
      trace.settle('wrong_host', 421);
      answer({
        status: 421,
        title: 'Not for this address',
        detail: 'The callback path answers only to localhost.',
        hint: `Open it as http://localhost:${this.ownPort}${FIXED_CALLBACK_PATH} instead.`,
      });
      return;
    }

    const target = await this.#open(this.ownPort, stateOf(req.url ?? ''), trace, answer);

    if (target === null) return;

    const { claim, stream } = target;

    this.#logRequest(claim, `${req.method ?? 'GET'} ${describeTarget(req.url ?? '/')}`);
    this.#forward(req, res, claim, stream, trace);
  }

  // Starts tracing a request for the status page; it ends when the browser's side closes.
  #trace(
    port: number,
    method: string | null,
    target: string | null,
    browserSide: NodeJS.EventEmitter,
  ): RequestTrace {
    const path = target === null ? null : describeTarget(target);
    const trace = this.#events.request({ port, method, path });

    browserSide.once('close', () => trace.end());

    return trace;
  }

  // Picks the container, waits for it if it is reconnecting, and opens a stream into it.
  async #open(
    hostPort: number,
    state: string | undefined,
    trace: RequestTrace,
    answer: (page: Page) => void,
  ): Promise<Target | null> {
    const claim = this.#route(hostPort, state);

    if (claim === undefined) {
      this.#log.warn({ port: hostPort }, messages.noAgentForPort(hostPort));
      trace.settle('no_container', 503);
      answer({
        status: 503,
        title: `No container serves port ${hostPort}`,
        detail: `Nothing in a connected container listens on port ${hostPort}, and no login there expects a callback.`,
        hint: 'Start the login again from the tool in the container, or check that its agent is running.',
        context: describeAgents(this.#options.agents()),
      });
      return null;
    }

    trace.route(claim.owner.name, claim.containerPort);

    const connection = await claim.owner.whenConnected(this.#options.holdMs);
    const stream = connection?.openStream(claim.containerPort) ?? null;

    if (stream === null) {
      this.#log.warn(
        { port: hostPort },
        messages.agentAway(claim.owner.name, this.#options.holdMs),
      );
      trace.settle('agent_away', 503);
      answer({
        status: 503,
        title: `Container "${claim.owner.name}" is not connected`,
        detail: `Its agent did not come back within ${Math.round(this.#options.holdMs / 1000)} s, so the request was not delivered.`,
        hint: 'Check that the container is running, then start the login again.',
        context: describeAgents(this.#options.agents()),
      });
      return null;
    }

    this.#options.logins.arrived(state);

    return { claim, stream, trace };
  }

  #route(hostPort: number, state: string | undefined): MirrorClaim<AgentRecord> | undefined {
    const claims = this.#options.mirrors.claims(hostPort);
    const owner = this.#options.logins.ownerOf(state);
    const byState = owner === undefined ? undefined : claims.find((c) => c.owner === owner);
    const now = Date.now();

    if (byState !== undefined) {
      this.#lastByState.set(hostPort, { owner: byState.owner, at: now });
      return byState;
    }

    // A follow-up without a state (Codex sends the browser on to /success on the same port)
    // belongs to the login that has just called back there, not to whoever announced last.
    const recent = this.#lastByState.get(hostPort);
    const followUp =
      recent !== undefined && now - recent.at < FOLLOW_UP_MS
        ? claims.find((c) => c.owner === recent.owner)
        : undefined;

    return followUp ?? claims.at(-1);
  }

  #logRequest(claim: MirrorClaim<AgentRecord>, what: string): void {
    this.#log.info(
      { agent: claim.owner.name, port: claim.containerPort },
      messages.carried(what, claim.owner.name, claim.containerPort),
    );
  }

  // A browser whose request got no answer at all is told why in a page; another protocol, or a
  // response cut short, can only see its connection end.
  #bridge(socket: Socket, { claim, stream, trace }: Target, http: boolean): void {
    bridge(socket, stream, (err) => {
      const unanswered = stream.bytesReceived === 0;
      const page = unanswered
        ? (this.#pageForReset(claim, err) ?? (http ? failurePage(err) : null))
        : null;

      if (page !== null && socket.writable) {
        trace.settle(resultOfFailure(err), page.status);
        this.#answer(socket, page);
      } else {
        trace.settle(resultOfFailure(err), null);
        socket.destroy();
      }
    });
  }

  // Replays the request with node's HTTP client over the tunnel stream, so that the response
  // (status, Location, Set-Cookie, body) comes back unchanged.
  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    claim: MirrorClaim<AgentRecord>,
    stream: TunnelStream,
    trace: RequestTrace,
  ): void {
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
    );
    const proxied = httpRequest({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: { ...headers, connection: 'close' },
      createConnection: () => stream,
    });

    // The head that node's client writes is not counted toward the container: only the body
    // passes through here, and the client hands its writes to the stream directly.
    countRequestBytes(req, this.#events.bytes);
    watchResponse(stream, trace, this.#events.bytes, true);

    proxied.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.rawHeaders));
      answer.pipe(res);
    });
    proxied.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
      } else {
        const page = this.#pageForReset(claim, err) ?? failurePage(err);

        trace.settle(resultOfFailure(err), page.status);
        sendPage(res, page);
      }
    });
    req.pipe(proxied);
  }

  // The page for a stream the agent would not or could not connect, logged once.
  #pageForReset(claim: MirrorClaim<AgentRecord>, err: Error): Page | null {
    const kind = err instanceof StreamResetError ? RESET_PAGES[err.reason] : undefined;

    if (kind === undefined) return null;

    const detail = kind.describe(claim.owner.name, claim.containerPort);

    this.#log.warn({ port: claim.containerPort }, detail);

    return {
      status: 502,
      title: kind.title,
      detail: `${detail}.`,
      hint: kind.hint,
      context: describeAgents(this.#options.agents()),
    };
  }

  #answer(socket: Socket, page: Page): void {
    if (!socket.destroyed) socket.end(errorResponse(page));
  }
}

// What the browser is told when the agent resets a stream before any answer.
const RESET_PAGES: Partial<
  Record<number, { title: string; hint: string; describe: (name: string, port: number) => string }>
> = {
  [ResetReason.REFUSED]: {
    title: 'Nothing is listening in the container',
    hint: 'If a login is in progress, the tool may have stopped waiting: start it again.',
    describe: messages.streamRefused,
  },
  [ResetReason.FORBIDDEN]: {
    title: 'The container does not carry this port',
    hint: "Check the agent's --ports and --map settings in that container.",
    describe: messages.streamForbidden,
  },
};

const CLOSED_PAGE: Page = {
  status: 502,
  title: 'The container closed the connection',
  detail: 'No answer came back from the container.',
  hint: 'The tool in the container may have stopped: look at its output there, then start the login again.',
};

const AGENT_GONE_PAGE: Page = {
  status: 502,
  title: 'The container went away',
  detail: "The connection to the container's porthole agent was lost before an answer came back.",
  hint: 'If a login was in progress, start it again once the container is back.',
};

// The page for a request that failed with no answer and no reset from the agent.
function failurePage(err: Error): Page {
  return err instanceof PortholeError && err.code === ErrorCodes.TUNNEL_CLOSED
    ? AGENT_GONE_PAGE
    : CLOSED_PAGE;
}

function sendPage(res: ServerResponse, page: Page): void {
  const body = pageBody(page);

  res.writeHead(page.status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

// Raw headers (name, value, name, value…) without the hop-by-hop ones; duplicates such as
// several Set-Cookie fields stay as they came.
function endToEnd(raw: string[]): string[] {
  const kept: string[] = [];

  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;

    if (!HOP_BY_HOP.has(name.toLowerCase())) kept.push(name, raw[i + 1] as string);
  }

  return kept;
}
