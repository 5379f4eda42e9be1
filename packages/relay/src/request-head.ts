import type { Socket } from 'node:net';

import {
  FIRST_BYTES_TIMEOUT_MS,
  LOOPBACK_HOST_NAMES,
  MAX_REQUEST_HEAD_BYTES,
  REQUEST_HEAD_TIMEOUT_MS,
} from '@porthole/shared';

/** The first request head on a mirrored connection, as far as routing needs it. */
export interface RequestHead {
  method: string;
  target: string;
  host: string | undefined;
  state: string | undefined;
}

/** What the relay read before deciding where a connection goes. */
export type Peeked =
  | { kind: 'http'; head: RequestHead; bytes: Buffer }
  | { kind: 'raw'; bytes: Buffer }
  | { kind: 'too-large' }
  | { kind: 'timeout' }
  | { kind: 'closed' };

// RFC 9112 §3: method token, request target, version. Neither the method's case nor the
// target's length decides whether bytes are HTTP: a page may send `fetch` with any method and
// a long URL, and whatever is taken for HTTP must pass the Host check before it is carried.
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/\d\.\d$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]*$/;
const VERSION_PREFIX = /^(H(T(T(P(\/(\d(\.\d?)?)?)?)?)?)?)?$/;

/**
 * Reads a connection's first request head without forwarding anything: the relay must know
 * the Host (to refuse DNS rebinding) and the `state` (to pick the container) before a single
 * byte reaches a container. Afterwards the socket is paused with the bytes read handed back.
 * With `allowRaw`, a client that sends nothing for a moment is taken to speak a server-first
 * protocol; otherwise a head must be whole within REQUEST_HEAD_TIMEOUT_MS, however slowly it
 * trickles in.
 */
export function peekRequestHead(socket: Socket, allowRaw: boolean): Promise<Peeked> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (result: Peeked) => {
      clearTimeout(timer);
      clearTimeout(silence);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(result);
    };
    const onClose = () => finish({ kind: 'closed' });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;

      const bytes = Buffer.concat(chunks, length);
      const end = bytes.indexOf('\r\n\r\n');

      if (end !== -1) {
        const head = parseHead(bytes.subarray(0, end).toString('latin1'));

        finish(head === null ? { kind: 'raw', bytes } : { kind: 'http', head, bytes });
      } else if (!mayBeRequestLine(bytes)) {
        finish({ kind: 'raw', bytes });
      } else if (length > MAX_REQUEST_HEAD_BYTES) {
        finish({ kind: 'too-large' });
      }
    };
    const timer = setTimeout(() => finish({ kind: 'timeout' }), REQUEST_HEAD_TIMEOUT_MS);
    const silence = allowRaw
      ? setTimeout(() => {
          if (length === 0) finish({ kind: 'raw', bytes: Buffer.alloc(0) });
        }, FIRST_BYTES_TIMEOUT_MS)
      : undefined;

    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

// Whether bytes that hold no whole head yet start an HTTP request: its request line, whole or
// still arriving. Anything else is some other protocol and is carried as it is.
function mayBeRequestLine(bytes: Buffer): boolean {
  const lineEnd = bytes.indexOf('\r\n');

  if (lineEnd !== -1) {
    return REQUEST_LINE.test(bytes.subarray(0, lineEnd).toString('latin1'));
  }

  const [method = '', target, version, ...rest] = bytes.toString('latin1').split(' ');

  if (rest.length > 0 || !TOKEN.test(method)) return false;
  if (target === undefined) return true;

  return /^\S*$/.test(target) && (version === undefined || VERSION_PREFIX.test(version));
}

function parseHead(text: string): RequestHead | null {
  const [requestLine = '', ...fields] = text.split('\r\n');
  const match = REQUEST_LINE.exec(requestLine);

  if (match === null) {
    return null;
  }

  const target = match[2] as string;
  let host: string | undefined;

  for (const field of fields) {
    const colon = field.indexOf(':');

    // Of several Host fields, a foreign one wins: a request is carried only if every Host it
    // names is this machine's loopback.
    if (colon > 0 && field.slice(0, colon).trim().toLowerCase() === 'host') {
      if (host === undefined || isLoopbackHost(host)) host = field.slice(colon + 1).trim();
    }
  }

  return { method: match[1] as string, target, host, state: stateOf(target) };
}

/** The `state` query parameter of a request target, if any. */
export function stateOf(target: string): string | undefined {
  const queryAt = target.indexOf('?');

  if (queryAt === -1) return undefined;

  return new URLSearchParams(target.slice(queryAt + 1).split('#', 1)[0]).get('state') ?? undefined;
}

/**
 * Whether a Host header names this machine's loopback (`localhost`, `127.0.0.1`, `[::1]`,
 * with or without a port). A page on another name that resolves to 127.0.0.1 (DNS
 * rebinding) shows its own name here, and is refused.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) {
    // HTTP/1.0 clients may omit it; browsers, the only rebinding threat, always send it.
    return true;
  }

  const name = host.toLowerCase().replace(/:\d{1,5}$/, '');

  return LOOPBACK_HOST_NAMES.has(name);
}

/**
 * Rewrites a request head to end its connection after the answer (`Connection: close`). A
 * browser keeps connections to localhost:PORT alive and sends its next request on any of them,
 * whichever container that connection went to; closing after each answer makes every request
 * open a connection of its own, routed by its own state and checked by its own Host. Upgrades
 * (WebSocket) are left as they are.
 */
export function closeAfterAnswer(bytes: Buffer): Buffer {
  const end = bytes.indexOf('\r\n\r\n');

  if (end === -1) return bytes;

  const [requestLine = '', ...fields] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const hop = (field: string) => /^(connection|keep-alive|proxy-connection)\s*:/i.test(field);

  if (fields.some((field) => hop(field) && /upgrade/i.test(field))) return bytes;

  const head = [requestLine, ...fields.filter((field) => !hop(field)), 'Connection: close'];

  return Buffer.concat([
    Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'),
    bytes.subarray(end + 4),
  ]);
}
