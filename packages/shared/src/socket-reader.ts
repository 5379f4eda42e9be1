import type { OnReadOpts, Socket } from 'node:net';

import { encodeData } from './frame-codec.js';
import { framePool } from './frame-pool.js';
import { FRAME_HEADER_BYTES, MIN_POOLED_PAYLOAD_BYTES } from './limits.js';
import type { TunnelStream } from './tunnel-stream.js';

// Where an idle or slow socket reads: one buffer for the whole process, copied out of at once,
// so that a socket holds a buffer of its own only while bulk data flows.
const scratch = Buffer.allocUnsafeSlow(framePool.bufferBytes);

/**
 * Carries what a socket receives into a tunnel stream with no copy: the socket reads (node's
 * `onread`) into a frame buffer that leaves room for the frame header in front, and the filled
 * buffer is sent as the frame. Small reads are copied into a frame of their own size instead.
 * It stops reading while the stream has no send window or the connection is congested, and
 * ends the stream once the socket ended and every byte read has gone out.
 *
 * Give `onread` to `net.connect`, then `attach` the connected socket.
 */
export class SocketReader {
  readonly #stream: TunnelStream;
  #socket: Socket | undefined;
  /** What the socket reads into next: `scratch`, or a buffer lent by framePool. */
  #buffer: Buffer = scratch;
  /** Bytes read but not yet sent for lack of window: #held[#start, #end). */
  #held: Buffer | null = null;
  #start = 0;
  #end = 0;
  #ended = false;
  #stopped = false;

  readonly onread: OnReadOpts = {
    buffer: () => this.#buffer.subarray(FRAME_HEADER_BYTES),
    callback: (bytes) => this.#onRead(bytes),
  };

  constructor(stream: TunnelStream) {
    this.#stream = stream;
  }

  /** Starts carrying bytes from `socket`, which was connected with `onread`. */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on('end', () => {
      this.#ended = true;
      this.#finish();
    });
    socket.once('close', () => {
      this.stop();

      // A closed socket reads no more, so its buffer may serve another.
      if (this.#buffer !== scratch) {
        framePool.give(this.#buffer);
        this.#buffer = scratch;
      }
    });
    // 'end' is emitted only by a flowing stream; with onread, no data events flow.
    socket.resume();
  }

  /** Stops carrying bytes: the stream failed or the socket closed. */
  stop(): void {
    if (this.#stopped) {
      return;
    }

    this.#stopped = true;

    if (this.#held !== null) {
      framePool.give(this.#held);
      this.#held = null;
    }
  }

  // Returning false pauses the socket until #resume.
  #onRead(bytes: number): boolean {
    if (this.#stopped || this.#stream.destroyed) {
      return true;
    }

    const end = FRAME_HEADER_BYTES + bytes;

    return this.#deliver(this.#take(end), end);
  }

  // The frame buffer that holds what was just read (payload from FRAME_HEADER_BYTES to `end`),
  // and the next buffer to read into.
  #take(end: number): Buffer {
    const read = this.#buffer;

    if (end - FRAME_HEADER_BYTES < MIN_POOLED_PAYLOAD_BYTES) {
      const own = Buffer.allocUnsafe(end);

      read.copy(own, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, end);

      if (read !== scratch) {
        framePool.give(read);
        this.#buffer = scratch;
      }

      return own;
    }

    this.#buffer = framePool.take();

    if (read !== scratch) {
      return read;
    }

    const pooled = framePool.take();

    scratch.copy(pooled, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES, end);

    return pooled;
  }

  // Sends what the window allows: all of it without a copy, or a copied part now and the rest
  // (written in place, its header over bytes already sent) once the peer grants credit.
  #deliver(buf: Buffer, end: number, start = FRAME_HEADER_BYTES): boolean {
    const stream = this.#stream;
    const window = stream.sendWindow;

    if (window < end - start) {
      if (window > 0) {
        stream.sendDataFrame(encodeData(stream.id, [buf.subarray(start, start + window)], window));
      }

      this.#held = buf;
      this.#start = start + window;
      this.#end = end;
      stream.whenCredited(() => this.#retry());

      return false;
    }

    this.#held = null;
    stream.sendDataFrame(buf.subarray(start - FRAME_HEADER_BYTES, end));

    if (stream.congested) {
      stream.whenUncongested(() => this.#resume());
      return false;
    }

    return true;
  }

  #retry(): void {
    const held = this.#held;

    if (this.#stopped || this.#stream.destroyed || held === null) {
      return;
    }

    if (this.#deliver(held, this.#end, this.#start)) {
      this.#resume();
    }
  }

  #resume(): void {
    if (this.#stopped) {
      return;
    }

    if (this.#ended) {
      this.#finish();
    } else {
      this.#socket?.resume();
    }
  }

  // END goes after the last DATA frame: while bytes wait for credit, it waits too.
  #finish(): void {
    if (this.#ended && this.#held === null && !this.#stopped && !this.#stream.writableEnded) {
      this.#stream.end();
    }
  }
}
