import { ErrorCodes, ProtocolError } from './errors.js';
import { framePool } from './frame-pool.js';
import {
  FRAME_HEADER_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MIN_POOLED_PAYLOAD_BYTES,
  SEND_FRAME_PAYLOAD_BYTES,
} from './limits.js';

/**
 * Binary frames carry stream traffic. Layout (big-endian):
 *
 *   kind u8 | stream id u32 | payload length u32 | payload
 *
 * A WebSocket message may hold several frames, and the decoder accepts a frame split across
 * messages, so the framing does not depend on how ws cuts messages.
 */
export const FrameKind = {
  /** Opens a stream to a port inside the container. Payload: port u16. */
  OPEN: 1,
  /** Stream bytes. Payload: 1 to MAX_FRAME_PAYLOAD_BYTES bytes. */
  DATA: 2,
  /** Grants the peer more send credit. Payload: increment u32 > 0. */
  WINDOW: 3,
  /** The sender will send no more data on the stream (a half close). No payload. */
  END: 4,
  /** Aborts the stream in both directions. Payload: reason u16. */
  RESET: 5,
} as const;

export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Why a stream was reset, sent in a RESET frame. */
export const ResetReason = {
  /** The sender gave up on the stream (its socket closed or errored). */
  CANCEL: 0,
  /** Nothing accepted the connection on the container port. */
  REFUSED: 1,
  /** The agent may not dial that port. */
  FORBIDDEN: 2,
  /** The agent could not reach the port for another reason (timeout, unreachable). */
  UNREACHABLE: 3,
  /** The sender ran out of a resource (too many streams). */
  REFUSED_STREAM: 4,
  /** A bug or an unexpected failure on the sender's side. */
  INTERNAL: 5,
} as const;

export type ResetReason = (typeof ResetReason)[keyof typeof ResetReason];

export type Frame =
  | { kind: typeof FrameKind.OPEN; streamId: number; port: number }
  | { kind: typeof FrameKind.DATA; streamId: number; payload: Buffer }
  | { kind: typeof FrameKind.WINDOW; streamId: number; increment: number }
  | { kind: typeof FrameKind.END; streamId: number }
  | { kind: typeof FrameKind.RESET; streamId: number; reason: number };

/** Writes a frame header into the first FRAME_HEADER_BYTES of `buf`. */
export function writeHeader(buf: Buffer, kind: FrameKind, streamId: number, length: number): void {
  buf[0] = kind;
  buf.writeUInt32BE(streamId, 1);
  buf.writeUInt32BE(length, 5);
}

function header(kind: FrameKind, streamId: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);

  writeHeader(buf, kind, streamId, length);

  return buf;
}

// A bulk payload goes into a recycled buffer (see frame-pool.ts); a small one into its own.
function dataFrame(streamId: number, length: number): Buffer {
  if (length < MIN_POOLED_PAYLOAD_BYTES || length > SEND_FRAME_PAYLOAD_BYTES) {
    return header(FrameKind.DATA, streamId, length);
  }

  const buf = framePool.take().subarray(0, FRAME_HEADER_BYTES + length);

  writeHeader(buf, FrameKind.DATA, streamId, length);

  return buf;
}

/** Encodes an OPEN frame. */
export function encodeOpen(streamId: number, port: number): Buffer {
  const buf = header(FrameKind.OPEN, streamId, 2);

  buf.writeUInt16BE(port, FRAME_HEADER_BYTES);

  return buf;
}

/**
 * Encodes a DATA frame from one or more chunks, copied once into the frame. The caller keeps
 * the total within MAX_FRAME_PAYLOAD_BYTES. A frame of a bulk size is built in a buffer lent by
 * `framePool`, which the transport gives back once the frame's bytes are sent.
 */
export function encodeData(
  streamId: number,
  chunks: readonly Uint8Array[],
  length: number,
): Buffer {
  const buf = dataFrame(streamId, length);
  let offset = FRAME_HEADER_BYTES;

  for (const chunk of chunks) {
    buf.set(chunk, offset);
    offset += chunk.byteLength;
  }

  return buf;
}

/** Encodes a WINDOW frame. */
export function encodeWindow(streamId: number, increment: number): Buffer {
  const buf = header(FrameKind.WINDOW, streamId, 4);

  buf.writeUInt32BE(increment, FRAME_HEADER_BYTES);

  return buf;
}

/** Encodes an END frame. */
export function encodeEnd(streamId: number): Buffer {
  return header(FrameKind.END, streamId, 0);
}

/** Encodes a RESET frame. */
export function encodeReset(streamId: number, reason: ResetReason): Buffer {
  const buf = header(FrameKind.RESET, streamId, 2);

  buf.writeUInt16BE(reason, FRAME_HEADER_BYTES);

  return buf;
}

const READ_HEADER = 0;
const READ_PAYLOAD = 1;

/**
 * Turns bytes into frames. Feed it with `push`; it calls `onFrame` for each whole frame and
 * keeps partial input until the rest arrives. A bad frame throws a ProtocolError and leaves
 * the decoder unusable: the connection it came on must close.
 */
export class FrameDecoder {
  readonly #onFrame: (frame: Frame) => void;
  readonly #maxPayload: number;
  #buffers: Buffer[] = [];
  #buffered = 0;
  #state = READ_HEADER;
  #kind = 0;
  #streamId = 0;
  #length = 0;
  #failed = false;

  constructor(onFrame: (frame: Frame) => void, maxPayload = MAX_FRAME_PAYLOAD_BYTES) {
    this.#onFrame = onFrame;
    this.#maxPayload = maxPayload;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    if (this.#failed) {
      throw new ProtocolError(ErrorCodes.FRAME_MALFORMED, 'decoder used after a protocol error');
    }

    this.#buffers.push(chunk);
    this.#buffered += chunk.length;

    try {
      this.#drain();
    } catch (err) {
      this.#failed = true;
      this.#buffers = [];
      this.#buffered = 0;
      throw err;
    }
  }

  #drain(): void {
    for (;;) {
      if (this.#state === READ_HEADER) {
        if (this.#buffered < FRAME_HEADER_BYTES) {
          return;
        }

        this.#readHeader();
      }

      if (this.#buffered < this.#length) {
        return;
      }

      const payload = this.#consume(this.#length);

      this.#state = READ_HEADER;
      this.#onFrame(this.#decodePayload(payload));
    }
  }

  #readHeader(): void {
    const head = this.#consume(FRAME_HEADER_BYTES);

    this.#kind = head.readUInt8(0);
    this.#streamId = head.readUInt32BE(1);
    this.#length = head.readUInt32BE(5);

    if (this.#length > this.#maxPayload) {
      throw new ProtocolError(
        ErrorCodes.FRAME_TOO_LARGE,
        `frame payload of ${this.#length} bytes exceeds the limit of ${this.#maxPayload}`,
      );
    }

    this.#checkLength();
    this.#state = READ_PAYLOAD;
  }

  #checkLength(): void {
    const expected = FIXED_PAYLOAD_BYTES[this.#kind];

    if (expected === undefined) {
      throw new ProtocolError(ErrorCodes.FRAME_MALFORMED, `unknown frame kind ${this.#kind}`);
    }

    const ok = expected === -1 ? this.#length > 0 : this.#length === expected;

    if (!ok) {
      throw new ProtocolError(
        ErrorCodes.FRAME_MALFORMED,
        `frame kind ${this.#kind} cannot carry ${this.#length} payload bytes`,
      );
    }

    if (this.#streamId === 0) {
      throw new ProtocolError(ErrorCodes.FRAME_MALFORMED, 'stream id 0 is reserved');
    }
  }

  #decodePayload(payload: Buffer): Frame {
    const streamId = this.#streamId;

    switch (this.#kind) {
      case FrameKind.OPEN:
        return { kind: FrameKind.OPEN, streamId, port: payload.readUInt16BE(0) };
      case FrameKind.DATA:
        return { kind: FrameKind.DATA, streamId, payload };
      case FrameKind.WINDOW:
        return { kind: FrameKind.WINDOW, streamId, increment: this.#increment(payload) };
      case FrameKind.END:
        return { kind: FrameKind.END, streamId };
      default:
        return { kind: FrameKind.RESET, streamId, reason: payload.readUInt16BE(0) };
    }
  }

  #increment(payload: Buffer): number {
    const increment = payload.readUInt32BE(0);

    if (increment === 0) {
      throw new ProtocolError(ErrorCodes.FRAME_MALFORMED, 'window increment of 0');
    }

    return increment;
  }

  // Takes n bytes off the front of the buffered input, without copying when they sit in one
  // chunk (the common case: ws hands over whole messages).
  #consume(n: number): Buffer {
    this.#buffered -= n;

    const first = this.#buffers[0];

    if (first === undefined) {
      return Buffer.alloc(0);
    }

    if (n === first.length) {
      this.#buffers.shift();
      return first;
    }

    if (n < first.length) {
      this.#buffers[0] = first.subarray(n);
      return first.subarray(0, n);
    }

    const out = Buffer.allocUnsafe(n);
    let offset = 0;

    while (offset < n) {
      const buf = this.#buffers[0] as Buffer;
      const take = Math.min(buf.length, n - offset);

      buf.copy(out, offset, 0, take);
      offset += take;
      this.#buffers[0] = buf.subarray(take);

      if (take === buf.length) {
        this.#buffers.shift();
      }
    }

    return out;
  }
}

// Payload bytes each kind must carry; -1 means "one or more".
const FIXED_PAYLOAD_BYTES: Record<number, number> = {
  [FrameKind.OPEN]: 2,
  [FrameKind.DATA]: -1,
  [FrameKind.WINDOW]: 4,
  [FrameKind.END]: 0,
  [FrameKind.RESET]: 2,
};
