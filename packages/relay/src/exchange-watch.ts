import type { Readable } from 'node:stream';

import { ResetReason, StreamResetError } from '@porthole/shared';

import type { ByteCounters, CallbackResult, RequestTrace } from './relay-events.js';

// "HTTP/1.1 200": as far as a response head must be read to know its status code.
const STATUS_LINE_BYTES = 12;

/**
 * The status code at the start of an HTTP/1.x response, read from its first bytes, or null
 * when they are not an HTTP response.
 */
export function responseStatus(head: Uint8Array): number | null {
  if (head.length < STATUS_LINE_BYTES) return null;

  const isHttp =
    head[0] === 0x48 && // H
    head[1] === 0x54 && // T
    head[2] === 0x54 && // T
    head[3] === 0x50 && // P
    head[4] === 0x2f && // /
    head[8] === 0x20; //   space

  if (!isHttp) return null;

  let status = 0;

  for (let i = 9; i < STATUS_LINE_BYTES; i++) {
    const digit = (head[i] as number) - 0x30;

    if (digit < 0 || digit > 9) return null;
    status = status * 10 + digit;
  }

  return status;
}

/**
 * Watches what comes back from the container on `stream`: counts its bytes, and settles the
 * trace as delivered with the status code of the response head. It only listens alongside
 * the pipe that carries the bytes, so it neither delays nor alters them; only a head split
 * before its status code is copied, once.
 */
export function watchResponse(
  stream: Readable,
  trace: RequestTrace,
  bytes: ByteCounters,
  http: boolean,
): void {
  let head: Buffer | null = null;
  let waiting = true;

  stream.on('data', (chunk: Buffer) => {
    bytes.toBrowser += chunk.length;

    if (!waiting) return;

    head = head === null ? chunk : Buffer.concat([head, chunk]);

    if (http && head.length < STATUS_LINE_BYTES) return;

    waiting = false;
    trace.settle('delivered', http ? responseStatus(head) : null);
    head = null;
  });
}

/** Counts the bytes that `source` hands on toward the container. */
export function countRequestBytes(source: Readable, bytes: ByteCounters): void {
  source.on('data', (chunk: Buffer) => {
    bytes.toContainer += chunk.length;
  });
}

/** The result of a request whose stream failed before the container answered. */
export function resultOfFailure(err: Error): CallbackResult {
  if (err instanceof StreamResetError && err.reason === ResetReason.REFUSED) return 'refused';
  if (err instanceof StreamResetError && err.reason === ResetReason.FORBIDDEN) return 'forbidden';

  return 'failed';
}
