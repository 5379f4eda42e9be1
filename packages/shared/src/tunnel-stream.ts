import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';

import { ErrorCodes, PortholeError, ProtocolError } from './errors.js';
import {
  encodeData,
  encodeEnd,
  encodeReset,
  encodeWindow,
  FrameKind,
  ResetReason,
  writeHeader,
} from './frame-codec.js';
import {
  FRAME_HEADER_BYTES,
  INITIAL_STREAM_WINDOW_BYTES,
  MAX_STREAM_WINDOW_BYTES,
  SEND_FRAME_PAYLOAD_BYTES,
  STREAM_READ_BUFFER_BYTES,
  STREAM_RECEIVE_WINDOW_BYTES,
  WINDOW_UPDATE_THRESHOLD_BYTES,
} from './limits.js';

/** What a stream needs from the connection it runs on. */
export interface StreamLink {
  send(frame: Buffer): void;
  /** True while the connection buffers more than it should; writers then wait. */
  readonly congested: boolean;
  whenDrained(callback: () => void): void;
  release(stream: TunnelStream): void;
}

/** The peer reset a stream; `reason` says why. */
export class StreamResetError extends PortholeError {
  readonly reason: number;

  constructor(reason: number) {
    super(ErrorCodes.STREAM_RESET, `stream reset by peer (reason ${reason})`);
    this.name = 'StreamResetError';
    this.reason = reason;
  }
}

/**
 * One byte stream inside the tunnel, as a Node Duplex: what is written to it reaches the peer's
 * end, and what the peer writes is read from it. Both directions are flow-controlled: a writer
 * waits when the peer has granted no credit, and credit is granted back only as the reader
 * consumes, so neither end buffers more than one window per stream.
 */
export class TunnelStream extends Duplex {
  readonly id: number;
  readonly port: number;
  readonly #link: StreamLink;
  #sendWindow = INITIAL_STREAM_WINDOW_BYTES;
  #receiveWindow = INITIAL_STREAM_WINDOW_BYTES;
  #received = 0;
  #windowTarget = INITIAL_STREAM_WINDOW_BYTES;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #pendingCallback: ((err?: Error | null) => void) | null = null;
  #creditWaiter: (() => void) | null = null;
  #sentEnd = false;
  #peerEnded = false;
  #peerReset = false;
  #resetReason: ResetReason = ResetReason.CANCEL;

  constructor(id: number, port: number, link: StreamLink) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: STREAM_READ_BUFFER_BYTES,
      writableHighWaterMark: STREAM_READ_BUFFER_BYTES,
    });
    this.id = id;
    this.port = port;
    this.#link = link;
  }

  /** Aborts the stream in both directions and tells the peer why. */
  reset(reason: ResetReason, err?: Error): void {
    this.#resetReason = reason;
    this.destroy(err);
  }

  /** Bytes received from the peer so far. */
  get bytesReceived(): number {
    return this.#received;
  }

  /** Payload bytes the peer lets this end send before it grants more. */
  get sendWindow(): number {
    return this.#sendWindow;
  }

  /** True while the connection under the stream holds more than it should. */
  get congested(): boolean {
    return this.#link.congested;
  }

  /**
   * Sends a DATA frame that the caller built in place, for a writer that reads straight into
   * frame buffers (see SocketReader) instead of calling `write`, which it must not mix with
   * this. `frame` starts with FRAME_HEADER_BYTES of room, where the header is written, and
   * carries 1 to `sendWindow` payload bytes; it belongs to the connection from then on.
   */
  sendDataFrame(frame: Buffer): void {
    const length = frame.length - FRAME_HEADER_BYTES;

    assert.ok(length > 0 && length <= this.#sendWindow, 'a frame within the send window');
    assert.ok(this.writableLength === 0 && !this.writableEnded, 'no write() in progress');
    writeHeader(frame, FrameKind.DATA, this.id, length);
    this.#sendWindow -= length;
    this.#link.send(frame);
  }

  /** Runs `callback` once, the next time the peer grants credit (not if the stream closes). */
  whenCredited(callback: () => void): void {
    this.#creditWaiter = callback;
  }

  /** Runs `callback` once the connection is not congested: at once if it is not now. */
  whenUncongested(callback: () => void): void {
    if (this.#link.congested) {
      this.#link.whenDrained(callback);
    } else {
      callback();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#queue([chunk], chunk.length, callback);
  }

  override _writev(entries: { chunk: Buffer }[], callback: () => void): void {
    let total = 0;

    const chunks = entries.map(({ chunk }) => {
      total += chunk.length;
      return chunk;
    });

    this.#queue(chunks, total, callback);
  }

  override _final(callback: () => void): void {
    this.#sentEnd = true;
    this.#link.send(encodeEnd(this.id));
    callback();
  }

  // Node calls _read before it takes the bytes being read out of the buffer, so the credit is
  // worked out a moment later, when readableLength tells what was really consumed.
  override _read(): void {
    queueMicrotask(() => this.#maybeCredit());
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    const clean = this.#sentEnd && this.#peerEnded;

    if (!this.#peerReset && !clean) {
      this.#link.send(encodeReset(this.id, this.#resetReason));
    }

    this.#pending = [];
    this.#pendingBytes = 0;
    this.#creditWaiter = null;
    this.#link.release(this);
    callback(err);
  }

  /** @internal The peer sent data. */
  handleData(payload: Buffer): void {
    if (this.#peerEnded) {
      throw new ProtocolError(ErrorCodes.STREAM_STATE, `data after end on stream ${this.id}`);
    }

    if (payload.length > this.#receiveWindow) {
      throw new ProtocolError(
        ErrorCodes.FLOW_CONTROL,
        `stream ${this.id} received ${payload.length} bytes with ${this.#receiveWindow} of credit`,
      );
    }

    this.#receiveWindow -= payload.length;
    this.#received += payload.length;

    if (this.destroyed) {
      return;
    }

    this.push(payload);
    this.#maybeCredit();
  }

  /** @internal The peer granted more credit. */
  handleWindow(increment: number): void {
    if (increment > MAX_STREAM_WINDOW_BYTES - this.#sendWindow) {
      throw new ProtocolError(ErrorCodes.FLOW_CONTROL, `window overflow on stream ${this.id}`);
    }

    this.#sendWindow += increment;

    if (this.#pendingCallback !== null) {
      this.#flush();
    }

    const waiter = this.#creditWaiter;

    if (waiter !== null && !this.destroyed) {
      this.#creditWaiter = null;
      waiter();
    }
  }

  /** @internal The peer half-closed. */
  handleEnd(): void {
    if (this.#peerEnded) {
      throw new ProtocolError(ErrorCodes.STREAM_STATE, `second end on stream ${this.id}`);
    }

    this.#peerEnded = true;
    this.push(null);
  }

  /** @internal The peer reset the stream. */
  handleReset(reason: number): void {
    this.#peerReset = true;
    this.destroy(new StreamResetError(reason));
  }

  /** @internal The connection is gone: nothing more can be sent. */
  handleTunnelClosed(): void {
    this.#peerReset = true;
    this.destroy(new PortholeError(ErrorCodes.TUNNEL_CLOSED, 'the tunnel closed'));
  }

  #queue(chunks: Uint8Array[], total: number, callback: () => void): void {
    this.#pending = chunks;
    this.#pendingBytes = total;
    this.#pendingCallback = callback;
    this.#flush();
  }

  // Sends as much pending data as the window allows, in frames of at most the frame limit.
  // The write callback runs once everything went out and the connection is not congested,
  // which is what pauses a piped source socket.
  #flush(): void {
    while (this.#pendingBytes > 0 && this.#sendWindow > 0) {
      const n = Math.min(this.#pendingBytes, this.#sendWindow, SEND_FRAME_PAYLOAD_BYTES);

      this.#link.send(encodeData(this.id, this.#take(n), n));
      this.#sendWindow -= n;
      this.#pendingBytes -= n;
    }

    if (this.#pendingBytes > 0) {
      return;
    }

    const callback = this.#pendingCallback;

    this.#pendingCallback = null;

    if (callback === null) {
      return;
    }

    if (this.#link.congested) {
      this.#link.whenDrained(callback);
    } else {
      callback();
    }
  }

  #take(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let needed = n;

    while (needed > 0) {
      const chunk = this.#pending[0] as Uint8Array;

      if (chunk.byteLength <= needed) {
        out.push(chunk);
        this.#pending.shift();
        needed -= chunk.byteLength;
      } else {
        out.push(chunk.subarray(0, needed));
        this.#pending[0] = chunk.subarray(needed);
        needed = 0;
      }
    }

    return out;
  }

  // Grants the peer credit for what the reader has taken out of the buffer. Waiting for a
  // threshold keeps small exchanges (a callback request) free of window frames.
  #maybeCredit(): void {
    if (this.#peerEnded || this.#spareCredit() < WINDOW_UPDATE_THRESHOLD_BYTES) {
      return;
    }

    // Past the threshold the stream carries bulk data: its credit tops up to a larger window
    // than the initial one, so that a sender is not held up by a reader that was briefly not
    // scheduled. Still no more than that window waits unread.
    this.#windowTarget = STREAM_RECEIVE_WINDOW_BYTES;

    const grant = this.#spareCredit();

    this.#receiveWindow += grant;
    this.#link.send(encodeWindow(this.id, grant));
  }

  // Credit that may be granted now: the window aimed at, less what the peer may already send
  // and what waits unread.
  #spareCredit(): number {
    return this.#windowTarget - this.#receiveWindow - this.readableLength;
  }
}
