import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';

import {
  encodeData,
  encodeEnd,
  encodeOpen,
  encodeReset,
  encodeWindow,
  ErrorCodes,
  FrameKind,
  INITIAL_STREAM_WINDOW_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_STREAM_WINDOW_BYTES,
  PortholeError,
  ProtocolError,
  ResetReason,
  STREAM_READ_BUFFER_BYTES,
  StreamResetError,
  StreamSession,
  type TunnelStream,
} from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { MemoryTransport } from './memory-transport.js';
import { thrownBy } from './thrown-by.js';

const MB = 1024 * 1024;

/** Resolves once no frame is in flight and none was sent for two turns of the event loop. */
async function settled(...transports: MemoryTransport[]): Promise<void> {
  let quietTurns = 0;

  while (quietTurns < 2) {
    const before = transports.reduce((sum, t) => sum + t.framesSent, 0);

    await new Promise<void>((resolve) => setImmediate(resolve));

    const after = transports.reduce((sum, t) => sum + t.framesSent, 0);
    const idle = transports.every((t) => t.inFlight === 0);

    quietTurns = idle && after === before ? quietTurns + 1 : 0;
  }
}

interface Link {
  relay: StreamSession;
  agent: StreamSession;
  /** Carries the relay's frames to the agent. */
  toAgent: MemoryTransport;
  /** Carries the agent's frames to the relay. */
  toRelay: MemoryTransport;
  accepted: TunnelStream[];
  nextAccepted(): Promise<TunnelStream>;
  settled(): Promise<void>;
}

function connect(options: { agentMaxStreams?: number } = {}): Link {
  const toAgent = new MemoryTransport();
  const toRelay = new MemoryTransport();
  const accepted: TunnelStream[] = [];
  const waiting: ((stream: TunnelStream) => void)[] = [];
  let handedOut = 0;

  const relay = new StreamSession({ transport: toAgent, role: 'relay' });
  const agent = new StreamSession({
    transport: toRelay,
    role: 'agent',
    onStream: (stream) => {
      accepted.push(stream);
      waiting.shift()?.(stream);
    },
    ...(options.agentMaxStreams === undefined ? {} : { maxStreams: options.agentMaxStreams }),
  });

  toAgent.peer = agent;
  toRelay.peer = relay;

  return {
    relay,
    agent,
    toAgent,
    toRelay,
    accepted,
    nextAccepted: () => {
      const index = handedOut;

      handedOut += 1;

      const ready = accepted[index];

      if (ready !== undefined) return Promise.resolve(ready);

      return new Promise((resolve) => waiting.push(resolve));
    },
    settled: () => settled(toAgent, toRelay),
  };
}

/** Reads a stream to its end in flowing mode. */
async function readAll(stream: TunnelStream): Promise<Buffer> {
  const chunks: Buffer[] = [];

  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(stream, 'end');

  return Buffer.concat(chunks);
}

async function nextError(stream: TunnelStream): Promise<unknown> {
  const [err] = (await once(stream, 'error')) as unknown[];

  return err;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function expectProtocolError(fn: () => unknown, code: string): void {
  const err = thrownBy(fn);

  expect(err).toBeInstanceOf(ProtocolError);
  expect(err).toMatchObject({ code });
}

function agentAlone(): {
  agent: StreamSession;
  transport: MemoryTransport;
  accepted: TunnelStream[];
} {
  const transport = new MemoryTransport();
  const accepted: TunnelStream[] = [];
  const agent = new StreamSession({
    transport,
    role: 'agent',
    onStream: (stream) => accepted.push(stream),
  });

  return { agent, transport, accepted };
}

function fullFrame(streamId: number): Buffer {
  return encodeData(streamId, [Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 1)], MAX_FRAME_PAYLOAD_BYTES);
}

describe('StreamSession', () => {
  it("hands a stream the relay opens to the agent's onStream with its port", async () => {
    const link = connect();
    const stream = link.relay.open(5432);
    const accepted = await link.nextAccepted();

    expect(accepted.port).toBe(5432);
    expect(accepted.id).toBe(stream.id);
    expect(link.relay.streamCount).toBe(1);
    expect(link.agent.streamCount).toBe(1);
  });

  it('gives the relay odd stream ids counting up from 1', () => {
    const link = connect();

    expect([link.relay.open(1), link.relay.open(2), link.relay.open(3)].map((s) => s.id)).toEqual([
      1, 3, 5,
    ]);
  });

  it('carries bytes written on either end to the other', async () => {
    const link = connect();
    const relayEnd = link.relay.open(80);
    const agentEnd = await link.nextAccepted();

    relayEnd.write('hello agent');

    const [toAgent] = (await once(agentEnd, 'data')) as Buffer[];

    agentEnd.write('hello relay');

    const [toRelay] = (await once(relayEnd, 'data')) as Buffer[];

    expect(toAgent?.toString()).toBe('hello agent');
    expect(toRelay?.toString()).toBe('hello relay');
    expect(link.toAgent.errors).toEqual([]);
    expect(link.toRelay.errors).toEqual([]);
  });

  it('carries 5 MB each way at once, byte for byte', async () => {
    const link = connect();
    const relayEnd = link.relay.open(80);
    const agentEnd = await link.nextAccepted();
    const up = randomBytes(5 * MB);
    const down = randomBytes(5 * MB);

    const atAgent = readAll(agentEnd);
    const atRelay = readAll(relayEnd);

    relayEnd.end(up);
    agentEnd.end(down);

    const [receivedUp, receivedDown] = await Promise.all([atAgent, atRelay]);

    expect(sha256(receivedUp)).toBe(sha256(up));
    expect(sha256(receivedDown)).toBe(sha256(down));
    expect(agentEnd.bytesReceived).toBe(up.length);
    expect(relayEnd.bytesReceived).toBe(down.length);
    expect(link.toAgent.errors).toEqual([]);
    expect(link.toRelay.errors).toEqual([]);
  });

  it('half-closes on END: the peer reads to its end and can still write back', async () => {
    const link = connect();
    const relayEnd = link.relay.open(80);
    const agentEnd = await link.nextAccepted();
    const relayClosed = once(relayEnd, 'close');
    const agentClosed = once(agentEnd, 'close');

    relayEnd.end('question');

    expect((await readAll(agentEnd)).toString()).toBe('question');
    expect(agentEnd.readableEnded).toBe(true);
    expect(agentEnd.writable).toBe(true);

    const answer = readAll(relayEnd);

    agentEnd.end('answer');

    expect((await answer).toString()).toBe('answer');

    await Promise.all([relayClosed, agentClosed]);
    await link.settled();

    expect(link.relay.streamCount).toBe(0);
    expect(link.agent.streamCount).toBe(0);
    expect(link.toAgent.framesOfKind(FrameKind.RESET)).toEqual([]);
    expect(link.toRelay.framesOfKind(FrameKind.RESET)).toEqual([]);
  });

  it("destroys the peer's stream with a StreamResetError carrying the reset reason", async () => {
    const link = connect();
    const relayEnd = link.relay.open(80);
    const agentEnd = await link.nextAccepted();
    const relayError = nextError(relayEnd);
    const agentClosed = once(agentEnd, 'close');

    agentEnd.reset(ResetReason.REFUSED);

    const err = await relayError;

    expect(err).toBeInstanceOf(StreamResetError);
    expect(err).toMatchObject({ code: ErrorCodes.STREAM_RESET, reason: ResetReason.REFUSED });
    expect(relayEnd.destroyed).toBe(true);

    await agentClosed;
    await link.settled();

    expect(agentEnd.errored).toBeNull();
    expect(link.toRelay.framesOfKind(FrameKind.RESET)).toEqual([
      { kind: FrameKind.RESET, streamId: relayEnd.id, reason: ResetReason.REFUSED },
    ]);
    expect(link.toAgent.framesOfKind(FrameKind.RESET)).toEqual([]);
    expect(link.relay.streamCount).toBe(0);
    expect(link.agent.streamCount).toBe(0);
  });

  it('resets the peer with CANCEL when a stream is destroyed without a reason', async () => {
    const link = connect();
    const relayEnd = link.relay.open(80);
    const agentEnd = await link.nextAccepted();
    const agentError = nextError(agentEnd);

    relayEnd.destroy();

    expect(await agentError).toMatchObject({ reason: ResetReason.CANCEL });
  });

  describe('flow control', () => {
    it('stops a writer whose reader never reads after one window, and resumes it on reading', async () => {
      const link = connect();
      const writer = link.relay.open(80);
      const reader = await link.nextAccepted();
      const payload = randomBytes(3 * MB);

      writer.end(payload);
      await link.settled();

      const sent = link.toAgent.dataBytes();

      expect(sent).toBeGreaterThanOrEqual(INITIAL_STREAM_WINDOW_BYTES);
      expect(sent).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW_BYTES + STREAM_READ_BUFFER_BYTES);
      expect(reader.readableLength).toBe(sent);
      expect(writer.writableFinished).toBe(false);
      expect(link.toRelay.framesOfKind(FrameKind.WINDOW)).toEqual([]);

      const received = await readAll(reader);

      expect(sha256(received)).toBe(sha256(payload));
      expect(link.toAgent.dataBytes()).toBe(payload.length);
    });

    it('grants credit to a reader that drains a full window with async iteration', async () => {
      const link = connect();
      const writer = link.relay.open(80);
      const reader = await link.nextAccepted();
      const payload = randomBytes(3 * MB);
      const chunks: Buffer[] = [];

      // The iterator destroys the reader once it has read everything; the writer then sees the
      // reset of the direction it never reads.
      writer.on('error', () => undefined);
      writer.end(payload);
      await link.settled();

      const consumed = (async () => {
        for await (const chunk of reader) chunks.push(chunk as Buffer);
      })();

      await link.settled();

      expect(Buffer.concat(chunks).length).toBe(payload.length);

      await consumed;

      expect(sha256(Buffer.concat(chunks))).toBe(sha256(payload));
    });

    it('accepts exactly one window from a peer and refuses one byte more', () => {
      const { agent, accepted } = agentAlone();

      agent.receive(encodeOpen(1, 80));

      for (let sent = 0; sent < INITIAL_STREAM_WINDOW_BYTES; sent += MAX_FRAME_PAYLOAD_BYTES) {
        agent.receive(fullFrame(1));
      }

      expect(accepted[0]?.readableLength).toBe(INITIAL_STREAM_WINDOW_BYTES);
      expectProtocolError(
        () => agent.receive(encodeData(1, [Buffer.from('x')], 1)),
        ErrorCodes.FLOW_CONTROL,
      );
    });

    it('refuses data beyond the window when it arrives coalesced in one message', () => {
      const { agent } = agentAlone();
      const frames = [encodeOpen(1, 80)];

      for (let sent = 0; sent <= INITIAL_STREAM_WINDOW_BYTES; sent += MAX_FRAME_PAYLOAD_BYTES) {
        frames.push(fullFrame(1));
      }

      expectProtocolError(() => agent.receive(Buffer.concat(frames)), ErrorCodes.FLOW_CONTROL);
    });

    it('accepts data up to the credit it has granted, and not one byte beyond', async () => {
      const { agent, transport, accepted } = agentAlone();
      const credit = (): number =>
        transport
          .framesOfKind(FrameKind.WINDOW)
          .reduce(
            (sum, frame) => sum + (frame.kind === FrameKind.WINDOW ? frame.increment : 0),
            INITIAL_STREAM_WINDOW_BYTES,
          );

      agent.receive(encodeOpen(1, 80));

      for (let sent = 0; sent < INITIAL_STREAM_WINDOW_BYTES; sent += MAX_FRAME_PAYLOAD_BYTES) {
        agent.receive(fullFrame(1));
      }

      const reader = accepted[0] as TunnelStream;

      reader.resume();
      await settled(transport);
      reader.pause();

      expect(reader.readableLength).toBe(0);
      expect(credit()).toBeGreaterThan(INITIAL_STREAM_WINDOW_BYTES);

      // A peer that spends every byte of credit as it is granted, with the reader paused.
      let sent = INITIAL_STREAM_WINDOW_BYTES;

      while (sent < credit()) {
        const n = Math.min(credit() - sent, MAX_FRAME_PAYLOAD_BYTES);

        agent.receive(encodeData(1, [Buffer.alloc(n)], n));
        sent += n;
      }

      expect(reader.readableLength).toBe(sent - INITIAL_STREAM_WINDOW_BYTES);
      expectProtocolError(
        () => agent.receive(encodeData(1, [Buffer.from('x')], 1)),
        ErrorCodes.FLOW_CONTROL,
      );
    });

    it('accepts WINDOW updates up to MAX_STREAM_WINDOW_BYTES and refuses one that overflows it', () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });
      const stream = relay.open(80);

      relay.receive(encodeWindow(stream.id, MAX_STREAM_WINDOW_BYTES - INITIAL_STREAM_WINDOW_BYTES));

      expectProtocolError(() => relay.receive(encodeWindow(stream.id, 1)), ErrorCodes.FLOW_CONTROL);
    });

    it('refuses a single WINDOW increment of 2^32 - 1', () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });
      const stream = relay.open(80);

      expectProtocolError(
        () => relay.receive(encodeWindow(stream.id, 0xffffffff)),
        ErrorCodes.FLOW_CONTROL,
      );
    });
  });

  describe('stream state', () => {
    it.each([
      { name: 'DATA', frame: encodeData(1, [Buffer.from('x')], 1) },
      { name: 'WINDOW', frame: encodeWindow(1, 1) },
      { name: 'END', frame: encodeEnd(1) },
      { name: 'RESET', frame: encodeReset(1, ResetReason.CANCEL) },
    ])('refuses $name for a stream the relay never opened', ({ frame }) => {
      const { agent } = agentAlone();

      expectProtocolError(() => agent.receive(frame), ErrorCodes.STREAM_STATE);
    });

    it('refuses a frame for a stream id of its own parity that it never opened', () => {
      const { agent } = agentAlone();

      expectProtocolError(() => agent.receive(encodeWindow(2, 1)), ErrorCodes.STREAM_STATE);
    });

    it('refuses, on the relay, a frame for a stream beyond those it opened', () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });

      relay.open(80);

      expectProtocolError(() => relay.receive(encodeEnd(3)), ErrorCodes.STREAM_STATE);
    });

    it('refuses an END after an END on the same stream', () => {
      const { agent } = agentAlone();

      agent.receive(encodeOpen(1, 80));
      agent.receive(encodeEnd(1));

      expectProtocolError(() => agent.receive(encodeEnd(1)), ErrorCodes.STREAM_STATE);
    });

    it('refuses DATA after an END on the same stream', () => {
      const { agent } = agentAlone();

      agent.receive(encodeOpen(1, 80));
      agent.receive(encodeEnd(1));

      expectProtocolError(
        () => agent.receive(encodeData(1, [Buffer.from('late')], 4)),
        ErrorCodes.STREAM_STATE,
      );
    });

    it('ignores frames for a stream the peer has just reset', async () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });
      const stream = relay.open(80);
      const failed = nextError(stream);

      relay.receive(encodeReset(stream.id, ResetReason.REFUSED));
      await failed;

      expect(relay.streamCount).toBe(0);
      expect(() => {
        relay.receive(encodeData(stream.id, [Buffer.from('crossed')], 7));
        relay.receive(encodeWindow(stream.id, 1024));
        relay.receive(encodeEnd(stream.id));
        relay.receive(encodeReset(stream.id, ResetReason.CANCEL));
      }).not.toThrow();
    });

    it('ignores frames for a stream it has just reset itself', async () => {
      const { agent, transport, accepted } = agentAlone();

      agent.receive(encodeOpen(1, 80));

      const stream = accepted[0] as TunnelStream;

      stream.reset(ResetReason.REFUSED);
      await once(stream, 'close');

      expect(transport.framesOfKind(FrameKind.RESET)).toEqual([
        { kind: FrameKind.RESET, streamId: 1, reason: ResetReason.REFUSED },
      ]);
      expect(agent.streamCount).toBe(0);
      expect(() => {
        agent.receive(encodeData(1, [Buffer.from('crossed')], 7));
        agent.receive(encodeEnd(1));
      }).not.toThrow();
    });
  });

  describe('opening streams', () => {
    it('refuses, on the agent, an OPEN with an even (agent-side) id', () => {
      const { agent, accepted } = agentAlone();

      expectProtocolError(() => agent.receive(encodeOpen(2, 80)), ErrorCodes.STREAM_STATE);
      expect(accepted).toEqual([]);
    });

    it('refuses, on the agent, a second OPEN with the same id', () => {
      const { agent, accepted } = agentAlone();

      agent.receive(encodeOpen(1, 80));

      expectProtocolError(() => agent.receive(encodeOpen(1, 81)), ErrorCodes.STREAM_STATE);
      expect(accepted).toHaveLength(1);
    });

    it('refuses, on the agent, an OPEN with an id lower than one already opened', () => {
      const { agent } = agentAlone();

      agent.receive(encodeOpen(5, 80));

      expectProtocolError(() => agent.receive(encodeOpen(3, 80)), ErrorCodes.STREAM_STATE);
    });

    it('refuses, on the relay, any OPEN from the agent', () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });

      expectProtocolError(() => relay.receive(encodeOpen(2, 80)), ErrorCodes.STREAM_STATE);
    });

    it('resets with REFUSED_STREAM the opens beyond maxStreams', async () => {
      const link = connect({ agentMaxStreams: 2 });
      const first = link.relay.open(80);
      const second = link.relay.open(80);
      const third = link.relay.open(80);
      const refused = nextError(third);

      const err = await refused;

      expect(err).toBeInstanceOf(StreamResetError);
      expect(err).toMatchObject({ reason: ResetReason.REFUSED_STREAM });
      expect(link.accepted.map((s) => s.id)).toEqual([first.id, second.id]);
      expect(link.agent.streamCount).toBe(2);
      expect(link.toRelay.framesOfKind(FrameKind.RESET)).toEqual([
        { kind: FrameKind.RESET, streamId: third.id, reason: ResetReason.REFUSED_STREAM },
      ]);
      expect(link.toAgent.errors).toEqual([]);
      expect(link.toRelay.errors).toEqual([]);
    });

    it('accepts a new stream once one below maxStreams has closed', async () => {
      const link = connect({ agentMaxStreams: 1 });
      const first = link.relay.open(80);
      const firstAccepted = await link.nextAccepted();
      const firstFailed = nextError(firstAccepted);

      first.destroy();

      expect(await firstFailed).toMatchObject({ reason: ResetReason.CANCEL });
      expect(link.agent.streamCount).toBe(0);

      const second = link.relay.open(81);
      const secondAccepted = await link.nextAccepted();

      expect(secondAccepted.id).toBe(second.id);
      expect(secondAccepted.port).toBe(81);
    });

    it('refuses to open more local streams than maxStreams', () => {
      const relay = new StreamSession({
        transport: new MemoryTransport(),
        role: 'relay',
        maxStreams: 1,
      });

      relay.open(80);

      expect(relay.canOpen).toBe(false);
      expectProtocolError(() => relay.open(80), ErrorCodes.TOO_MANY_STREAMS);
    });
  });

  describe('close', () => {
    it('destroys every open stream with PORTHOLE_ERR_TUNNEL_CLOSED', async () => {
      const link = connect();
      const streams = [link.relay.open(80), link.relay.open(81), link.relay.open(82)];

      await link.settled();

      const errors = Promise.all(streams.map(nextError));
      const framesBefore = link.toAgent.framesSent;

      link.relay.close();

      for (const err of await errors) {
        expect(err).toBeInstanceOf(PortholeError);
        expect(err).toMatchObject({ code: ErrorCodes.TUNNEL_CLOSED });
      }

      expect(streams.every((s) => s.destroyed)).toBe(true);
      expect(link.relay.streamCount).toBe(0);
      expect(link.toAgent.framesSent).toBe(framesBefore);
    });

    it('opens no stream and reads no input once closed', () => {
      const relay = new StreamSession({ transport: new MemoryTransport(), role: 'relay' });

      relay.close();

      expect(relay.canOpen).toBe(false);
      expectProtocolError(() => relay.open(80), ErrorCodes.TOO_MANY_STREAMS);
      expect(() => relay.receive(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 0]))).not.toThrow();
    });
  });
});
