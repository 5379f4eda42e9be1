/**
 * What the relay's parts report as they work, for the status page and the metrics. Each part
 * takes these hooks as an optional argument and does without them (`NO_EVENTS`), so that it can
 * be built and tested on its own.
 */

/**
 * How a request that reached a mirrored port or /oauth/callback fared. A connection that sends
 * no whole request head in time is not a request: browsers open spare connections that never
 * carry one, and counting those would drown the real refusals.
 */
export type CallbackResult =
  | 'delivered'
  | 'refused'
  | 'forbidden'
  | 'no_container'
  | 'wrong_host'
  | 'agent_away'
  | 'too_large'
  | 'failed'
  | 'no_answer';

/** Every result, in the order /metrics lists them. */
export const CALLBACK_RESULTS: readonly CallbackResult[] = [
  'delivered',
  'refused',
  'forbidden',
  'no_container',
  'wrong_host',
  'agent_away',
  'too_large',
  'failed',
  'no_answer',
];

/** Bytes carried through tunnel streams, counted where they pass. */
export interface ByteCounters {
  toContainer: number;
  toBrowser: number;
}

/** A request as it arrived: the method and the path with parameter names only (`describeTarget`). */
export interface RequestLine {
  port: number;
  method: string | null;
  path: string | null;
}

/** One request on its way, filled in as the router learns more. */
export interface RequestTrace {
  /** The container it goes to. */
  route(agent: string, containerPort: number): void;
  /** How it fared, with the status code when one is known; only the first call counts. */
  settle(result: CallbackResult, status: number | null): void;
  /** The browser's connection closed: a request not settled by then had no answer. */
  end(): void;
}

/** The hooks the relay's parts call. */
export interface RelayEvents {
  readonly bytes: ByteCounters;
  /** Agents, their ports or their logins changed. */
  changed(): void;
  /** A mirror could not bind its host port. */
  bindFailed(): void;
  /** An agent was refused before its WebSocket opened; `code` says why. */
  authRefused(code: string): void;
  /** A request arrived for a container. */
  request(line: RequestLine): RequestTrace;
}

const NO_TRACE: RequestTrace = {
  route: () => undefined,
  settle: () => undefined,
  end: () => undefined,
};

/** Hooks that do nothing. */
export const NO_EVENTS: RelayEvents = {
  bytes: { toContainer: 0, toBrowser: 0 },
  changed: () => undefined,
  bindFailed: () => undefined,
  authRefused: () => undefined,
  request: () => NO_TRACE,
};
