import {
  type Frame,
  FrameDecoder,
  FrameKind,
  type FrameTransport,
  type StreamSession,
} from '@porthole/shared';

/**
 * One direction of an in-memory connection: what a session sends is handed to the peer session
 * on a later turn of the event loop, and recorded (decoded) on the way for assertions.
 */
export class MemoryTransport implements FrameTransport {
  readonly congested = false;
  readonly frames: Frame[] = [];
  readonly errors: unknown[] = [];
  peer: StreamSession | undefined;
  inFlight = 0;
  framesSent = 0;
  readonly #tap = new FrameDecoder((frame) => this.frames.push(frame));

  send(frame: Buffer): void {
    this.framesSent += 1;
    // A copy: the sender may build its next frame in the same (pooled) buffer.
    this.#tap.push(Buffer.from(frame));
    this.inFlight += 1;

    setImmediate(() => {
      this.inFlight -= 1;

      try {
        this.peer?.receive(frame);
      } catch (err) {
        this.errors.push(err);
      }
    });
  }

  whenDrained(callback: () => void): void {
    queueMicrotask(callback);
  }

  /** DATA payload bytes that went through this transport. */
  dataBytes(): number {
    let total = 0;

    for (const frame of this.frames) {
      if (frame.kind === FrameKind.DATA) total += frame.payload.length;
    }

    return total;
  }

  /** The payload size of each DATA frame that went through, in order. */
  dataPayloadSizes(): number[] {
    return this.frames.flatMap((f) => (f.kind === FrameKind.DATA ? [f.payload.length] : []));
  }

  framesOfKind(kind: FrameKind): Frame[] {
    return this.frames.filter((frame) => frame.kind === kind);
  }
}
