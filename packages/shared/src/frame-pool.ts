import { FRAME_HEADER_BYTES, FRAME_POOL_MAX_BYTES, SEND_FRAME_PAYLOAD_BYTES } from './limits.js';

const kSlot = Symbol('porthole.framePoolSlot');

/** What a pool knows about one of its buffers, kept on the buffer's memory object. */
interface Slot {
  readonly pool: FramePool;
  readonly buffer: Buffer;
  lent: boolean;
}

type PooledMemory = ArrayBufferLike & { [kSlot]?: Slot };

/**
 * Recycles the buffers that DATA frames are built in. A frame's buffer is taken here, filled,
 * sent, and given back by the transport once the socket has taken its bytes, so a steady
 * transfer allocates nothing per frame (fresh buffers for every frame were most of the garbage
 * collector's work). Only buffers this pool lent come back; any other buffer handed to `give`
 * is left to the garbage collector, and so is a lent buffer that is never given back.
 */
export class FramePool {
  /** Bytes in each buffer: a frame header and the largest pooled payload. */
  readonly bufferBytes: number;
  readonly #maxFree: number;
  readonly #free: Slot[] = [];

  constructor(payloadBytes = SEND_FRAME_PAYLOAD_BYTES, maxBytes = FRAME_POOL_MAX_BYTES) {
    this.bufferBytes = FRAME_HEADER_BYTES + payloadBytes;
    this.#maxFree = Math.floor(maxBytes / this.bufferBytes);
  }

  /** Buffers waiting to be lent again. */
  get freeCount(): number {
    return this.#free.length;
  }

  /** A buffer of `bufferBytes` bytes; its contents are whatever the last user left there. */
  take(): Buffer {
    const slot = this.#free.pop() ?? this.#create();

    slot.lent = true;

    return slot.buffer;
  }

  /**
   * Hands back the buffer under `frame` (a view into a buffer `take` lent) once nothing reads
   * it any more. A second call for the same buffer, or a buffer the pool did not lend, does
   * nothing.
   */
  give(frame: Uint8Array): void {
    // A frame is a view into part of a lent buffer: its memory object says which.
    const slot = (frame.buffer as PooledMemory)[kSlot];

    if (slot === undefined || slot.pool !== this || !slot.lent) {
      return;
    }

    slot.lent = false;

    if (this.#free.length < this.#maxFree) {
      this.#free.push(slot);
    }
  }

  #create(): Slot {
    // allocUnsafeSlow: memory of its own, never a slice of Node's shared slab.
    const buffer = Buffer.allocUnsafeSlow(this.bufferBytes);
    const slot: Slot = { pool: this, buffer, lent: false };

    (buffer.buffer as PooledMemory)[kSlot] = slot;

    return slot;
  }
}

/** The process's frame pool, shared by every session in it. */
export const framePool = new FramePool();
