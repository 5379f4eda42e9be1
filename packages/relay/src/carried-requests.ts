import { MAX_SHOWN_PATH_LENGTH, RECENT_REQUESTS } from '@porthole/shared';

import type { CallbackResult, RequestLine, RequestTrace } from './relay-events.js';

/** A request as the status page lists it: no query value ever reaches it. */
export interface RequestView {
  at: string;
  agent: string | null;
  port: number;
  containerPort: number | null;
  method: string | null;
  path: string | null;
  status: number | null;
  result: CallbackResult | null;
  /** Time from arrival to the start of the answer (or the refusal); null while waiting. */
  ms: number | null;
}

/** What a trace tells the list around it. */
interface TraceHooks {
  settled(result: CallbackResult): void;
  changed(): void;
}

class Trace implements RequestTrace {
  readonly view: RequestView;
  readonly #started = performance.now();
  readonly #hooks: TraceHooks;

  constructor(line: RequestLine, hooks: TraceHooks) {
    this.view = {
      at: new Date().toISOString(),
      agent: null,
      port: line.port,
      containerPort: null,
      method: line.method,
      path: shorten(line.path),
      status: null,
      result: null,
      ms: null,
    };
    this.#hooks = hooks;
  }

  route(agent: string, containerPort: number): void {
    this.view.agent = agent;
    this.view.containerPort = containerPort;
    this.#hooks.changed();
  }

  // Timed to the start of the answer, not to the end of the connection: a browser keeps a
  // connection open long after its last answer, and the stream carries bytes, not exchanges.
  settle(result: CallbackResult, status: number | null): void {
    if (this.view.result !== null) return;

    this.view.result = result;
    this.view.status = status;
    this.view.ms = Math.round(performance.now() - this.#started);
    this.#hooks.settled(result);
    this.#hooks.changed();
  }

  // A browser that gave up, or a container that closed without a word.
  end(): void {
    this.settle('no_answer', null);
  }
}

/** The latest requests carried (or refused), newest last, and how each went. */
export class CarriedRequests {
  readonly #recent: Trace[] = [];
  readonly #hooks: TraceHooks;

  constructor(hooks: TraceHooks) {
    this.#hooks = hooks;
  }

  /** Starts tracing a request that just arrived. */
  start(line: RequestLine): RequestTrace {
    const trace = new Trace(line, this.#hooks);

    this.#recent.push(trace);

    if (this.#recent.length > RECENT_REQUESTS) this.#recent.shift();

    this.#hooks.changed();

    return trace;
  }

  /** The requests listed, newest first. */
  list(): RequestView[] {
    return this.#recent.map((trace) => ({ ...trace.view })).reverse();
  }
}

function shorten(path: string | null): string | null {
  return path !== null && path.length > MAX_SHOWN_PATH_LENGTH
    ? `${path.slice(0, MAX_SHOWN_PATH_LENGTH)}…`
    : path;
}
