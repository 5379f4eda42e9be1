/**
 * porthole's error registry. Every error a user or a peer can see carries one of these codes;
 * messages stay terse and never include secrets.
 */
export const ErrorCodes = {
  /** A binary frame announced more payload than the protocol allows. */
  FRAME_TOO_LARGE: 'PORTHOLE_ERR_FRAME_TOO_LARGE',
  /** A binary frame had an unknown kind or a payload of the wrong shape. */
  FRAME_MALFORMED: 'PORTHOLE_ERR_FRAME_MALFORMED',
  /** A control message was not valid JSON, too large, or of an unknown type or shape. */
  CONTROL_INVALID: 'PORTHOLE_ERR_CONTROL_INVALID',
  /** The two ends speak different protocol versions. */
  VERSION_MISMATCH: 'PORTHOLE_ERR_VERSION_MISMATCH',
  /** The handshake was out of order or did not finish in time. */
  HANDSHAKE: 'PORTHOLE_ERR_HANDSHAKE',
  /** A frame named a stream that was never opened, or opened one twice. */
  STREAM_STATE: 'PORTHOLE_ERR_STREAM_STATE',
  /** A peer sent more than its window allowed, or granted an impossible window. */
  FLOW_CONTROL: 'PORTHOLE_ERR_FLOW_CONTROL',
  /** A peer opened more streams at once than allowed. */
  TOO_MANY_STREAMS: 'PORTHOLE_ERR_TOO_MANY_STREAMS',
  /** The peer reset a stream. */
  STREAM_RESET: 'PORTHOLE_ERR_STREAM_RESET',
  /** The tunnel closed while the stream was open. */
  TUNNEL_CLOSED: 'PORTHOLE_ERR_TUNNEL_CLOSED',
  /** No token was given. */
  TOKEN_MISSING: 'PORTHOLE_ERR_TOKEN_MISSING',
  /** The token is malformed, wrongly signed, or for something else. */
  TOKEN_INVALID: 'PORTHOLE_ERR_TOKEN_INVALID',
  /** The token's lifetime is over. */
  TOKEN_EXPIRED: 'PORTHOLE_ERR_TOKEN_EXPIRED',
  /** Too many failed authentications came from this address: wait and try again. */
  TOO_MANY_FAILURES: 'PORTHOLE_ERR_TOO_MANY_FAILURES',
  /** The server the agent reached could not prove it holds the relay's key. */
  RELAY_PROOF: 'PORTHOLE_ERR_RELAY_PROOF',
  /** A newer connection with the same agent name replaced this one. */
  REPLACED: 'PORTHOLE_ERR_REPLACED',
  /** The relay's key file could not be read, created or trusted. */
  KEY_FILE: 'PORTHOLE_ERR_KEY_FILE',
  /** Something failed that should not have: a bug, reported without detail to the peer. */
  INTERNAL: 'PORTHOLE_ERR_INTERNAL',
  /** The relay is shutting down; agents reconnect to whatever takes its place. */
  RELAY_SHUTDOWN: 'PORTHOLE_ERR_RELAY_SHUTDOWN',
  /** Nothing is served at that path. */
  NOT_FOUND: 'PORTHOLE_ERR_NOT_FOUND',
  /** The request came from a web page (it has an Origin) where only programs are expected. */
  ORIGIN: 'PORTHOLE_ERR_ORIGIN',
  /** As many status pages follow the relay's live feed as it serves: close one. */
  TOO_MANY_PAGES: 'PORTHOLE_ERR_TOO_MANY_PAGES',
  /** A command-line option or environment variable has a value that cannot work. */
  INVALID_OPTION: 'PORTHOLE_ERR_INVALID_OPTION',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error with a stable code that callers branch on. */
export class PortholeError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PortholeError';
    this.code = code;
  }
}

/** A peer broke the wire protocol: the connection it came on is closed with `closeCode`. */
export class ProtocolError extends PortholeError {
  readonly closeCode: number;

  constructor(code: ErrorCode, message: string, closeCode: number = CloseCodes.PROTOCOL_ERROR) {
    super(code, message);
    this.name = 'ProtocolError';
    this.closeCode = closeCode;
  }
}

/** WebSocket close codes used on the agent connection (RFC 6455 §7.4.2: 4000–4999 are ours). */
export const CloseCodes = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 4000,
  VERSION_MISMATCH: 4001,
  REPLACED: 4002,
  HANDSHAKE: 4003,
  RELAY_SHUTDOWN: 4004,
  RELAY_PROOF: 4005,
  INTERNAL: 1011,
} as const;

/** Whether `value` is a porthole error with the given code. */
export function hasCode(value: unknown, code: ErrorCode): value is PortholeError {
  return value instanceof PortholeError && value.code === code;
}
