import { ErrorCodes, ProtocolError } from './errors.js';
import {
  encodeOpen,
  encodeReset,
  type Frame,
  FrameDecoder,
  FrameKind,
  ResetReason,
} from './frame-codec.js';
import { framePool } from './frame-pool.js';
import { MAX_STREAMS_PER_CONNECTION } from './limits.js';
import { type StreamLink, TunnelStream } from './tunnel-stream.js';

/** The connection under a session: where frames go and whether it is backed up. */
export interface FrameTransport {
  send(frame: Buffer): void;
  readonly congested: boolean;
  whenDrained(callback: () => void): void;
}

export interface StreamSessionOptions {
  transport: FrameTransport;
  /** The relay opens streams (odd ids); the agent accepts them. */
  role: 'relay' | 'agent';
  /** Called for each stream the peer opens. */
  onStream?: (stream: TunnelStream) => void;
  maxStreams?: number;
}

/**
 * Multiplexes tunnel streams over one connection: decodes incoming frames, routes them to
 * their stream, and enforces the stream-state rules. A rule broken by the peer throws a
 * ProtocolError out of `receive`; the caller closes the connection with its code.
 */
export class StreamSession {
  readonly #transport: FrameTransport;
  readonly #onStream: ((stream: TunnelStream) => void) | undefined;
  readonly #maxStreams: number;
  readonly #streams = new Map<number, TunnelStream>();
  readonly #decoder = new FrameDecoder((frame) => this.#dispatch(frame));
  readonly #localParity: number;
  readonly #link: StreamLink;
  #nextLocalId: number;
  #lastPeerId = 0;
  #closed = false;

  constructor(options: StreamSessionOptions) {
    this.#transport = options.transport;
    this.#onStream = options.onStream;
    this.#maxStreams = options.maxStreams ?? MAX_STREAMS_PER_CONNECTION;
    this.#localParity = options.role === 'relay' ? 1 : 0;
    this.#nextLocalId = options.role === 'relay' ? 1 : 2;
    this.#link = {
      send: (frame) => this.#send(frame),
      get congested() {
        return options.transport.congested;
      },
      whenDrained: (callback) => options.transport.whenDrained(callback),
      release: (stream) => this.#release(stream),
    };
  }

  /** Streams open right now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Whether another stream may be opened now. */
  get canOpen(): boolean {
    return !this.#closed && this.#streams.size < this.#maxStreams;
  }

  /** Opens a stream to `port` on the peer's side. */
  open(port: number): TunnelStream {
    if (!this.canOpen) {
      throw new ProtocolError(ErrorCodes.TOO_MANY_STREAMS, 'no more streams on this connection');
    }

    const id = this.#nextLocalId;

    this.#nextLocalId += 2;

    const stream = new TunnelStream(id, port, this.#link);

    this.#streams.set(id, stream);
    this.#send(encodeOpen(id, port));

    return stream;
  }

  /** Feeds bytes from a binary message. Throws a ProtocolError when the peer broke a rule. */
  receive(data: Buffer): void {
    if (this.#closed) {
      return;
    }

    this.#decoder.push(data);
  }

  /** Ends every stream: the connection is gone. */
  close(): void {
    if (this.#closed) {
      return;
    }

    this.#closed = true;

    for (const stream of [...this.#streams.values()]) {
      stream.handleTunnelClosed();
    }

    this.#streams.clear();
  }

  #send(frame: Buffer): void {
    if (this.#closed) {
      framePool.give(frame);
    } else {
      this.#transport.send(frame);
    }
  }

  #release(stream: TunnelStream): void {
    if (this.#streams.get(stream.id) === stream) {
      this.#streams.delete(stream.id);
    }
  }

  #dispatch(frame: Frame): void {
    if (frame.kind === FrameKind.OPEN) {
      this.#accept(frame.streamId, frame.port);
      return;
    }

    const stream = this.#streams.get(frame.streamId);

    if (stream === undefined) {
      this.#checkWasOpened(frame.streamId);
      return;
    }

    switch (frame.kind) {
      case FrameKind.DATA:
        stream.handleData(frame.payload);
        break;
      case FrameKind.WINDOW:
        stream.handleWindow(frame.increment);
        break;
      case FrameKind.END:
        stream.handleEnd();
        break;
      case FrameKind.RESET:
        stream.handleReset(frame.reason);
        break;
    }
  }

  #accept(id: number, port: number): void {
    if (this.#onStream === undefined || id % 2 === this.#localParity || id <= this.#lastPeerId) {
      throw new ProtocolError(ErrorCodes.STREAM_STATE, `peer may not open stream ${id}`);
    }

    this.#lastPeerId = id;

    if (this.#streams.size >= this.#maxStreams) {
      this.#send(encodeReset(id, ResetReason.REFUSED_STREAM));
      return;
    }

    const stream = new TunnelStream(id, port, this.#link);

    this.#streams.set(id, stream);
    this.#onStream(stream);
  }

  // Frames for a stream that has just closed are normal (they crossed a RESET on the wire) and
  // are dropped; frames for a stream that never existed mean the peer is confused or hostile.
  #checkWasOpened(id: number): void {
    const opened = id % 2 === this.#localParity ? id < this.#nextLocalId : id <= this.#lastPeerId;

    if (!opened) {
      throw new ProtocolError(ErrorCodes.STREAM_STATE, `frame for unopened stream ${id}`);
    }
  }
}
