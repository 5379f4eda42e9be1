import { ErrorCodes, ProtocolError } from './errors.js';
import {
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_LISTENING_PORTS,
  MAX_MAPPINGS_PER_AGENT,
  MAX_STATE_LENGTH,
  MAX_URL_LENGTH,
} from './limits.js';

/**
 * Control messages travel as WebSocket text frames: JSON objects told apart by `type`.
 *
 * Handshake: the agent sends `hello` with a fresh nonce; the relay answers `welcome` with the
 * nonce signed by its key. Only after the agent has checked that signature does it send `map`
 * or serve a stream.
 */

/** A host port carried to a port inside the container. */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
}

export interface HelloMessage {
  type: 'hello';
  version: number;
  nonce: string;
  software: string;
  /** The agent's network namespace (networkNamespaceId), where it can tell. */
  network?: string;
}

export interface WelcomeMessage {
  type: 'welcome';
  version: number;
  proof: string;
  software: string;
  /**
   * The agent shares the relay's loopback: the relay carries none of its ports under their own
   * number, since a mirror there would be the very port the agent dials.
   */
  sameNetwork?: boolean;
}

export interface MapMessage {
  type: 'map';
  mappings: PortMapping[];
}

/** The agent's listening ports (the whole set, each time it changes). */
export interface PortsMessage {
  type: 'ports';
  ports: number[];
}

/**
 * A login is starting: the tool's callback will arrive on `port` at `path`. Sent before the
 * authorization page opens, so that the host listener exists before the browser comes back.
 */
export interface RegisterMessage {
  type: 'register';
  port: number;
  path: string;
  state?: string;
}

/** Please open this page in the browser on the relay's machine. */
export interface OpenMessage {
  type: 'open';
  url: string;
}

/** How a mirror of a mapped port fared on the relay's side. */
export type MirrorStatus = 'mirrored' | 'busy' | 'failed';

/** Why a port is carried: mapped by the user, seen listening, or named by a login. */
export type PortSource = 'map' | 'listening' | 'login';

export interface MappedMessage {
  type: 'mapped';
  hostPort: number;
  containerPort: number;
  status: MirrorStatus;
  addresses: string[];
  source: PortSource;
  detail?: string;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export type ControlMessage =
  | HelloMessage
  | WelcomeMessage
  | MapMessage
  | PortsMessage
  | RegisterMessage
  | OpenMessage
  | MappedMessage
  | ErrorMessage;

type Fields = Record<string, unknown>;

function invalid(detail: string): ProtocolError {
  return new ProtocolError(ErrorCodes.CONTROL_INVALID, `invalid control message: ${detail}`);
}

function string(fields: Fields, name: string, max = 1024): string {
  const value = fields[name];

  if (typeof value !== 'string' || value.length > max) {
    throw invalid(`${name} must be a string of at most ${max} characters`);
  }

  return value;
}

function integer(fields: Fields, name: string, min: number, max: number): number {
  const value = fields[name];

  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}`);
  }

  return value;
}

function port(fields: Fields, name: string): number {
  return integer(fields, name, 1, 65535);
}

function object(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${what} must be an object`);
  }

  return value as Fields;
}

function array(fields: Fields, name: string, max: number): unknown[] {
  const value = fields[name];

  if (!Array.isArray(value) || value.length > max) {
    throw invalid(`${name} must be an array of at most ${max} items`);
  }

  return value;
}

function boolean(fields: Fields, name: string): boolean {
  const value = fields[name];

  if (typeof value !== 'boolean') {
    throw invalid(`${name} must be true or false`);
  }

  return value;
}

const MIRROR_STATUSES: readonly string[] = ['mirrored', 'busy', 'failed'];
const PORT_SOURCES: readonly string[] = ['map', 'listening', 'login'];

function oneOf<T extends string>(fields: Fields, name: string, allowed: readonly string[]): T {
  const value = string(fields, name, 16);

  if (!allowed.includes(value)) {
    throw invalid(`unknown ${name} "${value}"`);
  }

  return value as T;
}

const parsers: Record<ControlMessage['type'], (fields: Fields) => ControlMessage> = {
  hello: (f) => {
    const message: HelloMessage = {
      type: 'hello',
      version: integer(f, 'version', 0, 0xffff),
      nonce: string(f, 'nonce', 128),
      software: string(f, 'software', 64),
    };

    if (f['network'] !== undefined) message.network = string(f, 'network', 128);

    return message;
  },
  welcome: (f) => {
    const message: WelcomeMessage = {
      type: 'welcome',
      version: integer(f, 'version', 0, 0xffff),
      proof: string(f, 'proof', 256),
      software: string(f, 'software', 64),
    };

    if (f['sameNetwork'] !== undefined) message.sameNetwork = boolean(f, 'sameNetwork');

    return message;
  },
  map: (f) => ({
    type: 'map',
    mappings: array(f, 'mappings', MAX_MAPPINGS_PER_AGENT).map((item) => {
      const m = object(item, 'a mapping');

      return { hostPort: port(m, 'hostPort'), containerPort: port(m, 'containerPort') };
    }),
  }),
  ports: (f) => ({
    type: 'ports',
    ports: array(f, 'ports', MAX_LISTENING_PORTS).map((item) => port({ port: item }, 'port')),
  }),
  register: (f) => {
    const message: RegisterMessage = {
      type: 'register',
      port: port(f, 'port'),
      path: string(f, 'path', 2048),
    };

    if (f['state'] !== undefined) {
      message.state = string(f, 'state', MAX_STATE_LENGTH);
    }

    return message;
  },
  open: (f) => ({ type: 'open', url: string(f, 'url', MAX_URL_LENGTH) }),
  mapped: (f) => {
    const message: MappedMessage = {
      type: 'mapped',
      hostPort: port(f, 'hostPort'),
      containerPort: port(f, 'containerPort'),
      status: oneOf<MirrorStatus>(f, 'status', MIRROR_STATUSES),
      addresses: array(f, 'addresses', 16).map((a) => {
        if (typeof a !== 'string' || a.length > 64) throw invalid('addresses must be strings');
        return a;
      }),
      source: oneOf<PortSource>(f, 'source', PORT_SOURCES),
    };

    if (f['detail'] !== undefined) {
      message.detail = string(f, 'detail', 512);
    }

    return message;
  },
  error: (f) => ({ type: 'error', code: string(f, 'code', 64), message: string(f, 'message') }),
};

/**
 * Parses and validates one control message. Anything else — bad JSON, an unknown `type`, a
 * missing field — is a ProtocolError, never a crash.
 */
export function parseControlMessage(text: string): ControlMessage {
  if (Buffer.byteLength(text) > MAX_CONTROL_MESSAGE_BYTES) {
    throw invalid(`longer than ${MAX_CONTROL_MESSAGE_BYTES} bytes`);
  }

  let value: unknown;

  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }

  const fields = object(value, 'a control message');
  const type = fields['type'];

  if (typeof type !== 'string' || !Object.hasOwn(parsers, type)) {
    throw invalid(`unknown type ${JSON.stringify(type)?.slice(0, 32) ?? 'undefined'}`);
  }

  return parsers[type as ControlMessage['type']](fields);
}

/** Serializes a control message for a text frame. */
export function encodeControlMessage(message: ControlMessage): string {
  return JSON.stringify(message);
}
