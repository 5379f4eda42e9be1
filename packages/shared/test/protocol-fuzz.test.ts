/**
 * Property tests for everything a hostile peer can feed the wire protocol: the frame decoder,
 * the control-message parser and a stream session. Each property runs with a fixed seed, so a
 * run is repeatable; fast-check prints the seed and the shrunk counterexample on a failure
 * (set PORTHOLE_FUZZ_SEED to explore other seeds).
 */
import { createHash } from 'node:crypto';

import {
  CloseCodes,
  type ControlMessage,
  encodeControlMessage,
  type ErrorCode,
  ErrorCodes,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameDecoder,
  FrameKind,
  type FrameTransport,
  INITIAL_STREAM_WINDOW_BYTES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_FRAME_PAYLOAD_BYTES,
  MAX_STREAM_WINDOW_BYTES,
  parseControlMessage,
  ProtocolError,
  ResetReason,
  StreamSession,
  type TunnelStream,
} from '@porthole/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { encodeFrame } from './encode-frame.js';
import { caughtFrom } from './thrown-by.js';

const SEED = Number(process.env['PORTHOLE_FUZZ_SEED'] ?? 20_260_412);
const RUNS = { seed: SEED, numRuns: 300 } as const;

const KNOWN_KINDS: readonly number[] = Object.values(FrameKind);
const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

// ---------------------------------------------------------------------------------------------
// Frames written out by hand, so that the decoder is not checked against its own encoders.

function rawFrame(
  kind: number,
  streamId: number,
  payload: Buffer,
  length = payload.length,
): Buffer {
  const head = Buffer.alloc(FRAME_HEADER_BYTES);

  head[0] = kind;
  head[1] = (streamId >>> 24) & 0xff;
  head[2] = (streamId >>> 16) & 0xff;
  head[3] = (streamId >>> 8) & 0xff;
  head[4] = streamId & 0xff;
  head[5] = (length >>> 24) & 0xff;
  head[6] = (length >>> 16) & 0xff;
  head[7] = (length >>> 8) & 0xff;
  head[8] = length & 0xff;

  return Buffer.concat([head, payload]);
}

function u16(value: number): Buffer {
  return Buffer.from([(value >>> 8) & 0xff, value & 0xff]);
}

function u32(value: number): Buffer {
  return Buffer.from([
    (value >>> 24) & 0xff,
    (value >>> 16) & 0xff,
    (value >>> 8) & 0xff,
    value & 0xff,
  ]);
}

function handEncode(frame: Frame): Buffer {
  switch (frame.kind) {
    case FrameKind.OPEN:
      return rawFrame(FrameKind.OPEN, frame.streamId, u16(frame.port));
    case FrameKind.DATA:
      return rawFrame(FrameKind.DATA, frame.streamId, frame.payload);
    case FrameKind.WINDOW:
      return rawFrame(FrameKind.WINDOW, frame.streamId, u32(frame.increment));
    case FrameKind.END:
      return rawFrame(FrameKind.END, frame.streamId, Buffer.alloc(0));
    case FrameKind.RESET:
      return rawFrame(FrameKind.RESET, frame.streamId, u16(frame.reason));
  }
}

// The one shape every failure must have: a ProtocolError with a registered code that closes
// the connection as a protocol error.
function expectProtocolError(err: unknown, code?: ErrorCode): asserts err is ProtocolError {
  if (!(err instanceof ProtocolError)) {
    throw new Error(`expected a ProtocolError, got ${String(err)}`, { cause: err });
  }

  expect(err.code).toMatch(/^PORTHOLE_ERR_[A-Z_]+$/);
  expect(CODES.has(err.code)).toBe(true);
  expect(err.closeCode).toBe(CloseCodes.PROTOCOL_ERROR);

  if (code !== undefined) expect(err.code).toBe(code);
}

// Frames in a form that compares fast: payloads by length and digest, not byte by byte.
function summary(frames: readonly Frame[]): unknown[] {
  return frames.map((frame) =>
    frame.kind === FrameKind.DATA
      ? {
          ...frame,
          payload: `${frame.payload.length}:${createHash('sha1').update(frame.payload).digest('hex')}`,
        }
      : frame,
  );
}

// A frame the decoder handed out must be one it could have decoded: known kind, nonzero id,
// payload of the kind's shape.
function expectWellFormed(frame: Frame): void {
  expect(KNOWN_KINDS).toContain(frame.kind);
  expect(frame.streamId).toBeGreaterThanOrEqual(1);
  expect(frame.streamId).toBeLessThanOrEqual(0xffffffff);

  if (frame.kind === FrameKind.DATA) {
    expect(frame.payload.length).toBeGreaterThanOrEqual(1);
    expect(frame.payload.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES);
  }

  if (frame.kind === FrameKind.WINDOW) expect(frame.increment).toBeGreaterThanOrEqual(1);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const streamIdArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 16 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xffffffff }) },
);

const payloadArb = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 48 }).map(Buffer.from) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(MAX_FRAME_PAYLOAD_BYTES, MAX_FRAME_PAYLOAD_BYTES - 1, 4096)
      .map((n) => Buffer.alloc(n, 0xa5)),
  },
);

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    kind: fc.constant(FrameKind.OPEN),
    streamId: streamIdArb,
    port: fc.integer({ min: 0, max: 0xffff }),
  }),
  fc.record({ kind: fc.constant(FrameKind.DATA), streamId: streamIdArb, payload: payloadArb }),
  fc.record({
    kind: fc.constant(FrameKind.WINDOW),
    streamId: streamIdArb,
    increment: fc.oneof(
      fc.integer({ min: 1, max: 1 << 20 }),
      fc.integer({ min: 1, max: 0xffffffff }),
      fc.constant(0xffffffff),
    ),
  }),
  fc.record({ kind: fc.constant(FrameKind.END), streamId: streamIdArb }),
  fc.record({
    kind: fc.constant(FrameKind.RESET),
    streamId: streamIdArb,
    reason: fc.integer({ min: 0, max: 0xffff }),
  }),
) as fc.Arbitrary<Frame>;

/** Cuts `bytes` at the given (unsorted, possibly repeated, possibly empty-making) points. */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;

  for (const point of points) {
    chunks.push(bytes.subarray(from, point));
    from = point;
  }

  chunks.push(bytes.subarray(from));

  return chunks;
}

const cutsArb = fc.array(fc.nat(), { maxLength: 12 });

/**
 * Byte soup shaped like frames: headers of any kind (known or not), stream ids including 0,
 * lengths that fit, lie, or are huge, and payloads of any length — so that most inputs get past
 * the first header and exercise the decoder's states, unlike uniformly random bytes.
 */
const frameLikeArb = fc
  .record({
    kind: fc.oneof(fc.constantFrom(...KNOWN_KINDS), fc.integer({ min: 0, max: 255 })),
    streamId: fc.oneof(fc.constant(0), streamIdArb),
    length: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 8 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) },
      { weight: 1, arbitrary: fc.constant(MAX_FRAME_PAYLOAD_BYTES + 1) },
    ),
    payload: fc.uint8Array({ maxLength: 12 }).map(Buffer.from),
  })
  .map(({ kind, streamId, length, payload }) => rawFrame(kind, streamId, payload, length));

// ---------------------------------------------------------------------------------------------
// FrameDecoder

interface Decoded {
  frames: Frame[];
  error: unknown;
  /** bufferedBytes after each push, with the length of that push. */
  buffered: { after: number; chunk: number }[];
}

function decode(chunks: readonly Buffer[], maxPayload?: number): Decoded {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame), maxPayload);
  const buffered: Decoded['buffered'] = [];
  let error: unknown;

  for (const chunk of chunks) {
    error = caughtFrom(() => decoder.push(chunk));
    buffered.push({ after: decoder.bufferedBytes, chunk: chunk.length });

    if (error !== undefined) break;
  }

  return { frames, error, buffered };
}

describe('FrameDecoder under fuzzing', () => {
  it('fails only with a ProtocolError on uniformly random bytes in random chunks', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 16 }), (arrays) => {
        const { frames, error } = decode(arrays.map((a) => Buffer.from(a)));

        if (error !== undefined) expectProtocolError(error);
        frames.forEach(expectWellFormed);
      }),
      RUNS,
    );
  });

  it('fails only with a ProtocolError on frame-shaped byte soup cut anywhere', () => {
    fc.assert(
      fc.property(fc.array(frameLikeArb, { maxLength: 10 }), cutsArb, (frames, cuts) => {
        const result = decode(split(Buffer.concat(frames), cuts));

        if (result.error !== undefined) expectProtocolError(result.error);
        result.frames.forEach(expectWellFormed);
      }),
      RUNS,
    );
  });

  it('keeps refusing input with a ProtocolError once it has failed', () => {
    fc.assert(
      fc.property(
        frameLikeArb,
        fc.array(fc.uint8Array({ maxLength: 32 }), { minLength: 1, maxLength: 4 }),
        (bad, more) => {
          const decoder = new FrameDecoder(() => undefined);
          const first = caughtFrom(() => decoder.push(bad));

          fc.pre(first !== undefined);
          expectProtocolError(first);
          expect(decoder.bufferedBytes).toBe(0);

          for (const chunk of more) {
            expectProtocolError(caughtFrom(() => decoder.push(Buffer.from(chunk))));
            expect(decoder.bufferedBytes).toBe(0);
          }
        },
      ),
      RUNS,
    );
  });

  it('never buffers more than one frame plus the chunk just pushed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(frameArb.map(handEncode), frameLikeArb), { maxLength: 8 }),
        cutsArb,
        (frames, cuts) => {
          const { buffered } = decode(split(Buffer.concat(frames), cuts));

          for (const { after, chunk } of buffered) {
            expect(after).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES + FRAME_HEADER_BYTES + chunk);
          }
        },
      ),
      RUNS,
    );
  });

  it('decodes a valid frame sequence identically however it is split', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), cutsArb, (frames, cuts) => {
        const bytes = Buffer.concat(frames.map(handEncode));
        const whole = decode([bytes]);
        const pieces = decode(split(bytes, cuts));

        expect(whole.error).toBeUndefined();
        expect(pieces.error).toBeUndefined();
        expect(summary(whole.frames)).toEqual(summary(frames));
        expect(summary(pieces.frames)).toEqual(summary(frames));
        expect(pieces.buffered.at(-1)?.after ?? 0).toBe(0);
      }),
      RUNS,
    );
  });

  it('lays out frames with its encoders exactly as the wire format says', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        expect(encodeFrame(frame).equals(handEncode(frame))).toBe(true);
      }),
      RUNS,
    );
  });

  it('emits the whole frames of a truncated sequence and holds exactly the rest', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 8 }),
        fc.nat(),
        cutsArb,
        (frames, at, cuts) => {
          const encoded = frames.map(handEncode);
          const bytes = Buffer.concat(encoded);
          const cut = at % (bytes.length + 1);
          const { frames: out, error, buffered } = decode(split(bytes.subarray(0, cut), cuts));

          // Walk the frame boundaries to find what is whole and what is left over.
          let offset = 0;
          let whole = 0;

          while (whole < encoded.length && offset + (encoded[whole] as Buffer).length <= cut) {
            offset += (encoded[whole] as Buffer).length;
            whole += 1;
          }

          const rest = cut - offset;
          // A partial header is held as is; once the header is whole it is consumed and only
          // the partial payload is held.
          const held = rest < FRAME_HEADER_BYTES ? rest : rest - FRAME_HEADER_BYTES;

          expect(error).toBeUndefined();
          expect(summary(out)).toEqual(summary(frames.slice(0, whole)));
          expect(buffered.at(-1)?.after).toBe(held);
        },
      ),
      RUNS,
    );
  });

  it('refuses a huge declared length as soon as the header is whole, before any payload', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...KNOWN_KINDS),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.integer({ min: MAX_FRAME_PAYLOAD_BYTES + 1, max: 0xffffffff }),
        fc.integer({ min: 0, max: FRAME_HEADER_BYTES - 1 }),
        (kind, streamId, length, at) => {
          const header = rawFrame(kind, streamId, Buffer.alloc(0), length);
          const decoder = new FrameDecoder(() => undefined);

          expect(caughtFrom(() => decoder.push(header.subarray(0, at)))).toBeUndefined();
          expectProtocolError(
            caughtFrom(() => decoder.push(header.subarray(at))),
            ErrorCodes.FRAME_TOO_LARGE,
          );
          expect(decoder.bufferedBytes).toBe(0);
        },
      ),
      RUNS,
    );
  });

  it('refuses a frame of unknown kind as soon as its header is whole', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }).filter((kind) => !KNOWN_KINDS.includes(kind)),
        streamIdArb,
        fc.integer({ min: 0, max: MAX_FRAME_PAYLOAD_BYTES }),
        (kind, streamId, length) => {
          const header = rawFrame(kind, streamId, Buffer.alloc(0), length);
          const frames: Frame[] = [];
          const decoder = new FrameDecoder((frame) => frames.push(frame));

          expectProtocolError(
            caughtFrom(() => decoder.push(header)),
            ErrorCodes.FRAME_MALFORMED,
          );
          expect(frames).toEqual([]);
        },
      ),
      RUNS,
    );
  });

  it('delivers every frame before a bad one, in order, and then fails', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 6 }),
        fc.oneof(
          fc.integer({ min: 6, max: 255 }).map((kind) => rawFrame(kind, 1, Buffer.alloc(2))),
          fc.constantFrom(...KNOWN_KINDS).map((kind) => rawFrame(kind, 0, Buffer.alloc(2))),
          fc.constant(rawFrame(FrameKind.WINDOW, 1, u32(0))),
          fc.constant(rawFrame(FrameKind.DATA, 1, Buffer.alloc(0))),
        ),
        cutsArb,
        (good, bad, cuts) => {
          const { frames, error } = decode(
            split(Buffer.concat([...good.map(handEncode), bad]), cuts),
          );

          expectProtocolError(error, ErrorCodes.FRAME_MALFORMED);
          expect(summary(frames)).toEqual(summary(good));
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// parseControlMessage

const MESSAGE_TYPES = [
  'hello',
  'welcome',
  'map',
  'ports',
  'register',
  'open',
  'mapped',
  'error',
] as const;

const FIELD_NAMES = [
  'type',
  'version',
  'nonce',
  'software',
  'proof',
  'mappings',
  'hostPort',
  'containerPort',
  'ports',
  'port',
  'path',
  'state',
  'url',
  'status',
  'addresses',
  'source',
  'detail',
  'code',
  'message',
  '__proto__',
  'constructor',
  'toString',
] as const;

const VALID_MESSAGES: readonly ControlMessage[] = [
  { type: 'hello', version: 1, nonce: 'bm9uY2U', software: 'porthole-agent/0.1.0' },
  { type: 'welcome', version: 1, proof: 'c2lnbmF0dXJl', software: 'porthole-relay/0.1.0' },
  { type: 'map', mappings: [{ hostPort: 8888, containerPort: 8000 }] },
  { type: 'ports', ports: [3000, 43817] },
  { type: 'register', port: 43817, path: '/callback', state: 'xyz' },
  { type: 'open', url: 'https://auth.example/authorize?state=xyz' },
  {
    type: 'mapped',
    hostPort: 8888,
    containerPort: 8000,
    status: 'busy',
    addresses: ['127.0.0.1', '::1'],
    source: 'map',
    detail: 'in use',
  },
  { type: 'error', code: 'PORTHOLE_ERR_REPLACED', message: 'replaced' },
];

// Values at and around every boundary the parser checks.
const edgeValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -0,
    -1,
    1,
    1.5,
    65535,
    65536,
    0xffff,
    0x10000,
    2 ** 31,
    2 ** 53,
    1e308,
    '',
    'x',
    'mirrored',
    'listening',
    'hello',
    [],
    {},
    [{}],
    [0],
    [65536],
    ['x'.repeat(65)],
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 40 }),
  fc
    .constantFrom(16, 63, 64, 65, 128, 129, 256, 257, 512, 513, 1024, 1025, 2048, 2049)
    .map((n) => 'a'.repeat(n)),
  fc.array(fc.integer({ min: -1, max: 70000 }), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 2 }),
);

type Mutation =
  | { op: 'delete'; field: string }
  | { op: 'set'; field: string; value: unknown }
  | { op: 'retype'; type: string }
  | { op: 'wrap' };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('delete' as const), field: fc.constantFrom(...FIELD_NAMES) }),
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('set' as const),
      field: fc.constantFrom(...FIELD_NAMES),
      value: edgeValueArb,
    }),
  },
  fc.record({
    op: fc.constant('retype' as const),
    type: fc.oneof(fc.constantFrom(...MESSAGE_TYPES), fc.string({ maxLength: 8 })),
  }),
  fc.record({ op: fc.constant('wrap' as const) }),
);

function mutate(message: ControlMessage, mutations: readonly Mutation[]): unknown {
  // No prototype, so that a "__proto__" field is an ordinary field of the JSON text.
  let value: unknown = Object.assign(Object.create(null) as object, message);

  for (const m of mutations) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) break;

    const fields = value as Record<string, unknown>;

    if (m.op === 'delete') delete fields[m.field];
    if (m.op === 'set') fields[m.field] = m.value;
    if (m.op === 'retype') fields['type'] = m.type;
    if (m.op === 'wrap') value = [value];
  }

  return value;
}

// The one contract of the parser: a ProtocolError coded CONTROL_INVALID with a short message
// (it ends up in logs and in the peer's error message), or a message that is already in its
// canonical form and parses to itself again.
function checkParse(text: string): void {
  let message: ControlMessage;

  try {
    message = parseControlMessage(text);
  } catch (err) {
    expectProtocolError(err, ErrorCodes.CONTROL_INVALID);
    expect(err.message.length).toBeLessThanOrEqual(160);
    return;
  }

  expect(MESSAGE_TYPES).toContain(message.type);
  expect(parseControlMessage(encodeControlMessage(message))).toEqual(message);
  expect(Buffer.byteLength(encodeControlMessage(message))).toBeLessThanOrEqual(
    MAX_CONTROL_MESSAGE_BYTES,
  );
}

describe('parseControlMessage under fuzzing', () => {
  it('accepts or refuses random strings only with PORTHOLE_ERR_CONTROL_INVALID', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.string({ unit: 'binary', maxLength: 80 }),
          fc.string({
            unit: fc.constantFrom(...'{}[]":,0123456789.eE-+ truefalsnul\\'),
            maxLength: 80,
          }),
        ),
        (text) => checkParse(text),
      ),
      RUNS,
    );
  });

  it('accepts or refuses random JSON texts only with PORTHOLE_ERR_CONTROL_INVALID', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), (text) => checkParse(text)),
      RUNS,
    );
  });

  it('accepts or refuses any serializable value only with PORTHOLE_ERR_CONTROL_INVALID', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), (value) => {
        const text = JSON.stringify(value) as string | undefined;

        fc.pre(text !== undefined);
        checkParse(text);
      }),
      RUNS,
    );
  });

  it('accepts or refuses objects of a known type with random fields only with CONTROL_INVALID', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...MESSAGE_TYPES),
        fc.dictionary(fc.constantFrom(...FIELD_NAMES), edgeValueArb, { maxKeys: 8 }),
        (type, fields) => checkParse(JSON.stringify({ ...fields, type })),
      ),
      RUNS,
    );
  });

  it('accepts or refuses mutated valid messages only with PORTHOLE_ERR_CONTROL_INVALID', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...VALID_MESSAGES),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        (message, mutations) => checkParse(JSON.stringify(mutate(message, mutations))),
      ),
      RUNS,
    );
  });

  it('refuses, with CONTROL_INVALID, any text over MAX_CONTROL_MESSAGE_BYTES', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...VALID_MESSAGES),
        fc.integer({ min: 1, max: 4096 }),
        fc.constantFrom(' ', '\u00e9', '\ud83d\ude00'),
        (message, extra, pad) => {
          const text = encodeControlMessage(message);
          const padding = pad.repeat(
            Math.ceil(
              (MAX_CONTROL_MESSAGE_BYTES - Buffer.byteLength(text) + extra) /
                Buffer.byteLength(pad),
            ),
          );

          expectProtocolError(
            caughtFrom(() => parseControlMessage(text + padding)),
            ErrorCodes.CONTROL_INVALID,
          );
        },
      ),
      { ...RUNS, numRuns: 40 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// StreamSession against a hostile peer, checked step by step against a model of the rules.

class RecordingTransport implements FrameTransport {
  readonly congested = false;
  readonly sent: Frame[] = [];
  readonly #tap = new FrameDecoder((frame) => this.sent.push(frame));

  send(frame: Buffer): void {
    this.#tap.push(frame);
  }

  whenDrained(callback: () => void): void {
    queueMicrotask(callback);
  }
}

/**
 * Which stream a hostile frame names, worked out against the session's state when the frame
 * is sent, so that sequences reach deep states (live streams, flow control) instead of dying
 * on their first made-up id: a live stream, one that has closed, the next id the peer may
 * open, or a literal id (never opened, wrong parity, huge).
 */
type IdRef = { ref: 'live' | 'closed' | 'next'; pick: number } | { ref: 'raw'; id: number };

type Template =
  | { t: 'open'; id: IdRef; port: number }
  | { t: 'data'; id: IdRef; length: number }
  | { t: 'window'; id: IdRef; increment: number }
  | { t: 'end'; id: IdRef }
  | { t: 'reset'; id: IdRef; reason: number }
  | { t: 'bad'; bytes: Buffer; code: ErrorCode };

/** A hostile frame with its stream id worked out. */
type PeerFrame =
  | { t: 'open'; id: number; port: number }
  | { t: 'data'; id: number; length: number }
  | { t: 'window'; id: number; increment: number }
  | { t: 'end'; id: number }
  | { t: 'reset'; id: number; reason: number }
  | { t: 'bad'; bytes: Buffer; code: ErrorCode };

type Step =
  | { t: 'peer'; frames: Template[] }
  | { t: 'localOpen'; port: number }
  | { t: 'localReset'; pick: number }
  | { t: 'localWrite'; pick: number; length: number };

function idRefArb(weights: { live: number; closed: number; next: number; raw: number }) {
  return fc.oneof(
    {
      weight: weights.live,
      arbitrary: fc.record({ ref: fc.constant('live' as const), pick: fc.nat() }),
    },
    {
      weight: weights.closed,
      arbitrary: fc.record({ ref: fc.constant('closed' as const), pick: fc.nat() }),
    },
    {
      weight: weights.next,
      arbitrary: fc.record({ ref: fc.constant('next' as const), pick: fc.nat() }),
    },
    {
      weight: weights.raw,
      arbitrary: fc.record({
        ref: fc.constant('raw' as const),
        id: fc.oneof(
          fc.integer({ min: 1, max: 12 }),
          fc.constantFrom(0x7fffffff, 0xfffffffe, 0xffffffff),
        ),
      }),
    },
  ) as fc.Arbitrary<IdRef>;
}

const openIdArb = idRefArb({ live: 1, closed: 1, next: 8, raw: 1 });
const frameIdArb = idRefArb({ live: 16, closed: 4, next: 1, raw: 1 });

const badFrameArb: fc.Arbitrary<Template> = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 4 }))
    .filter(([kind]) => !KNOWN_KINDS.includes(kind))
    .map(([kind, n]) => ({
      t: 'bad' as const,
      bytes: rawFrame(kind, 1, Buffer.alloc(n)),
      code: ErrorCodes.FRAME_MALFORMED,
    })),
  // Stream id 0 on a frame of the right shape.
  fc
    .constantFrom(
      { kind: FrameKind.OPEN, n: 2 },
      { kind: FrameKind.DATA, n: 1 },
      { kind: FrameKind.WINDOW, n: 4 },
      { kind: FrameKind.END, n: 0 },
      { kind: FrameKind.RESET, n: 2 },
    )
    .map(({ kind, n }) => ({
      t: 'bad' as const,
      bytes: rawFrame(kind, 0, Buffer.alloc(n, 1)),
      code: ErrorCodes.FRAME_MALFORMED,
    })),
  // A payload of the wrong size for its kind.
  fc
    .constantFrom(
      { kind: FrameKind.OPEN, n: 3 },
      { kind: FrameKind.DATA, n: 0 },
      { kind: FrameKind.WINDOW, n: 2 },
      { kind: FrameKind.END, n: 1 },
      { kind: FrameKind.RESET, n: 0 },
    )
    .map(({ kind, n }) => ({
      t: 'bad' as const,
      bytes: rawFrame(kind, 1, Buffer.alloc(n, 1)),
      code: ErrorCodes.FRAME_MALFORMED,
    })),
  fc.constant({
    t: 'bad' as const,
    bytes: rawFrame(FrameKind.WINDOW, 1, u32(0)),
    code: ErrorCodes.FRAME_MALFORMED,
  }),
  fc
    .tuple(
      fc.constantFrom(...KNOWN_KINDS),
      fc.integer({ min: MAX_FRAME_PAYLOAD_BYTES + 1, max: 0xffffffff }),
    )
    .map(([kind, length]) => ({
      t: 'bad' as const,
      bytes: rawFrame(kind, 1, Buffer.alloc(0), length),
      code: ErrorCodes.FRAME_TOO_LARGE,
    })),
);

function templateArb(role: 'relay' | 'agent'): fc.Arbitrary<Template> {
  return fc.oneof(
    {
      // A hostile agent may not open streams at all: keep such attempts rare on the relay.
      weight: role === 'agent' ? 5 : 1,
      arbitrary: fc.record({
        t: fc.constant('open' as const),
        id: openIdArb,
        port: fc.integer({ min: 0, max: 0xffff }),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('data' as const),
        id: frameIdArb,
        length: fc.oneof(
          fc.integer({ min: 1, max: 64 }),
          fc.constantFrom(MAX_FRAME_PAYLOAD_BYTES, MAX_FRAME_PAYLOAD_BYTES - 1),
        ),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('window' as const),
        id: frameIdArb,
        increment: fc.oneof(
          fc.integer({ min: 1, max: 1 << 20 }),
          fc.constantFrom(
            MAX_STREAM_WINDOW_BYTES - INITIAL_STREAM_WINDOW_BYTES,
            MAX_STREAM_WINDOW_BYTES - INITIAL_STREAM_WINDOW_BYTES + 1,
            2 ** 30,
            0xffffffff,
          ),
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('end' as const), id: frameIdArb }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('reset' as const),
        id: frameIdArb,
        reason: fc.integer({ min: 0, max: 0xffff }),
      }),
    },
    { weight: 1, arbitrary: badFrameArb },
  );
}

// A peer that floods one stream: enough full frames to overrun the initial window.
const floodArb: fc.Arbitrary<Step> = fc
  .tuple(frameIdArb, fc.integer({ min: 1, max: 6 }))
  .map(([id, count]) => ({
    t: 'peer' as const,
    frames: Array.from({ length: count }, () => ({
      t: 'data' as const,
      id,
      length: MAX_FRAME_PAYLOAD_BYTES,
    })),
  }));

function stepsArb(role: 'relay' | 'agent'): fc.Arbitrary<Step[]> {
  const localOpen = fc.record({
    t: fc.constant('localOpen' as const),
    port: fc.integer({ min: 1, max: 0xffff }),
  });
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 10,
      arbitrary: fc
        .array(templateArb(role), { minLength: 1, maxLength: 3 })
        .map((frames) => ({ t: 'peer' as const, frames })),
    },
    { weight: 2, arbitrary: floodArb },
    { weight: 2, arbitrary: localOpen },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('localReset' as const), pick: fc.nat() }) },
    {
      // Local writers, so that hostile WINDOW frames meet data waiting for credit.
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('localWrite' as const),
        pick: fc.nat(),
        length: fc.oneof(
          fc.integer({ min: 1, max: 100 }),
          fc.constantFrom(MAX_FRAME_PAYLOAD_BYTES + 1, INITIAL_STREAM_WINDOW_BYTES / 2),
        ),
      }),
    },
  );

  // Streams to work on first: the relay opens its own; a hostile relay opens the agent's.
  const peerOpen: fc.Arbitrary<Step> = fc.integer({ min: 1, max: 0xffff }).map((port) => ({
    t: 'peer' as const,
    frames: [{ t: 'open' as const, id: { ref: 'next' as const, pick: 0 }, port }],
  }));

  return fc
    .tuple(
      fc.array(role === 'relay' ? localOpen : peerOpen, { maxLength: 4 }),
      fc.array(step, { maxLength: 40 }),
    )
    .map(([opens, steps]) => [...opens, ...steps]);
}

const FLOOD_PAYLOAD = Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 0x5a);

function peerBytes(frame: PeerFrame): Buffer {
  switch (frame.t) {
    case 'open':
      return rawFrame(FrameKind.OPEN, frame.id, u16(frame.port));
    case 'data':
      return rawFrame(FrameKind.DATA, frame.id, FLOOD_PAYLOAD.subarray(0, frame.length));
    case 'window':
      return rawFrame(FrameKind.WINDOW, frame.id, u32(frame.increment));
    case 'end':
      return rawFrame(FrameKind.END, frame.id, Buffer.alloc(0));
    case 'reset':
      return rawFrame(FrameKind.RESET, frame.id, u16(frame.reason));
    case 'bad':
      return frame.bytes;
  }
}

interface ModelStream {
  peerEnded: boolean;
  /** Bytes the peer may still send (nothing reads, so no credit is ever granted back). */
  receiveWindow: number;
  /** Bytes written locally, and the credit the peer has granted in all. */
  written: number;
  credit: number;
}

/** Credit the peer has granted and the stream has not used yet. */
function sendWindow(stream: ModelStream): number {
  return stream.credit - Math.min(stream.written, stream.credit);
}

/** What the protocol says a session must do, frame by frame. */
class SessionModel {
  readonly streams = new Map<number, ModelStream>();
  /** Ids of streams that were opened (or refused) and are gone. */
  readonly closed: number[] = [];
  readonly #localParity: number;
  readonly #acceptsOpens: boolean;
  readonly #maxStreams: number;
  #nextLocalId: number;
  #lastPeerId = 0;

  constructor(role: 'relay' | 'agent', maxStreams: number) {
    this.#localParity = role === 'relay' ? 1 : 0;
    this.#nextLocalId = role === 'relay' ? 1 : 2;
    this.#acceptsOpens = role === 'agent';
    this.#maxStreams = maxStreams;
  }

  resolve(template: Template): PeerFrame {
    return template.t === 'bad' ? template : { ...template, id: this.#idOf(template.id) };
  }

  /** Frames the session must send in answer, or the code of the error it must throw. */
  receive(frame: PeerFrame): Frame[] | ErrorCode {
    if (frame.t === 'bad') return frame.code;

    if (frame.t === 'open') {
      if (
        !this.#acceptsOpens ||
        frame.id % 2 === this.#localParity ||
        frame.id <= this.#lastPeerId
      ) {
        return ErrorCodes.STREAM_STATE;
      }

      this.#lastPeerId = frame.id;

      if (this.streams.size >= this.#maxStreams) {
        this.closed.push(frame.id);
        return [{ kind: FrameKind.RESET, streamId: frame.id, reason: ResetReason.REFUSED_STREAM }];
      }

      this.streams.set(frame.id, this.#fresh());
      return [];
    }

    const stream = this.streams.get(frame.id);

    if (stream === undefined) {
      const opened =
        frame.id % 2 === this.#localParity
          ? frame.id < this.#nextLocalId
          : frame.id <= this.#lastPeerId;

      // Frames for a stream that closed are dropped; for one never opened, refused.
      return opened ? [] : ErrorCodes.STREAM_STATE;
    }

    switch (frame.t) {
      case 'data':
        if (stream.peerEnded) return ErrorCodes.STREAM_STATE;
        if (frame.length > stream.receiveWindow) return ErrorCodes.FLOW_CONTROL;
        stream.receiveWindow -= frame.length;
        return [];
      case 'window':
        if (frame.increment > MAX_STREAM_WINDOW_BYTES - sendWindow(stream)) {
          return ErrorCodes.FLOW_CONTROL;
        }
        stream.credit += frame.increment;
        return [];
      case 'end':
        if (stream.peerEnded) return ErrorCodes.STREAM_STATE;
        stream.peerEnded = true;
        return [];
      case 'reset':
        this.#forget(frame.id);
        return [];
    }
  }

  /** The id a local open gets, or null when the session is full. */
  open(): number | null {
    if (this.streams.size >= this.#maxStreams) return null;

    const id = this.#nextLocalId;

    this.#nextLocalId += 2;
    this.streams.set(id, this.#fresh());

    return id;
  }

  /** The local side wrote to a live stream (picked by index); returns its id. */
  write(pick: number, length: number): number | undefined {
    const id = this.#live()[pick % Math.max(1, this.streams.size)];

    if (id !== undefined) (this.streams.get(id) as ModelStream).written += length;

    return id;
  }

  /** The local side reset a live stream (picked by index); returns its id. */
  resetLocal(pick: number): number | undefined {
    const id = this.#live()[pick % Math.max(1, this.streams.size)];

    if (id !== undefined) this.#forget(id);

    return id;
  }

  #live(): number[] {
    return [...this.streams.keys()].sort((a, b) => a - b);
  }

  #forget(id: number): void {
    this.streams.delete(id);
    this.closed.push(id);
  }

  #idOf(ref: IdRef): number {
    const live = this.#live();

    if (ref.ref === 'raw') return ref.id;
    if (ref.ref === 'closed' && this.closed.length > 0) {
      return this.closed[ref.pick % this.closed.length] as number;
    }
    if (ref.ref !== 'next' && live.length > 0) return live[ref.pick % live.length] as number;

    const peerParity = 1 - this.#localParity;
    let id = this.#lastPeerId + 1;

    if (id % 2 !== peerParity) id += 1;

    return Math.min(0xffffffff, id + 2 * (ref.pick % 3));
  }

  #fresh(): ModelStream {
    return {
      peerEnded: false,
      receiveWindow: INITIAL_STREAM_WINDOW_BYTES,
      written: 0,
      credit: INITIAL_STREAM_WINDOW_BYTES,
    };
  }
}

interface Harness {
  session: StreamSession;
  transport: RecordingTransport;
  /** Every stream the session ever handed out or opened, by id. */
  streams: Map<number, TunnelStream>;
}

function harness(role: 'relay' | 'agent', maxStreams: number): Harness {
  const transport = new RecordingTransport();
  const streams = new Map<number, TunnelStream>();
  const session = new StreamSession({
    transport,
    role,
    maxStreams,
    ...(role === 'agent'
      ? {
          onStream: (stream: TunnelStream) => {
            // Resets and the tunnel closing surface as stream errors; the test checks state.
            stream.on('error', () => undefined);
            streams.set(stream.id, stream);
          },
        }
      : {}),
  });

  return { session, transport, streams };
}

interface Outcome {
  error: ErrorCode | undefined;
  /** What the session sent, in order. */
  sent: Frame[];
  /** The hostile frames as sent, ids worked out. */
  received: PeerFrame[];
}

// Runs `steps` against a real session and the model side by side. Stops at the first protocol
// error, as a connection would.
function runAgainstModel(
  role: 'relay' | 'agent',
  maxStreams: number,
  steps: readonly Step[],
): Outcome {
  const { session, transport, streams } = harness(role, maxStreams);
  const model = new SessionModel(role, maxStreams);
  const received: PeerFrame[] = [];
  const dataSent = new Map<number, number>();
  let error: ErrorCode | undefined;

  for (const step of steps) {
    const before = transport.sent.length;
    const expected: Frame[] = [];

    if (step.t === 'localOpen') {
      const id = model.open();

      if (id === null) {
        expectProtocolError(
          caughtFrom(() => session.open(step.port)),
          ErrorCodes.TOO_MANY_STREAMS,
        );
      } else {
        const stream = session.open(step.port);

        stream.on('error', () => undefined);
        streams.set(stream.id, stream);
        expect(stream.id).toBe(id);
        expected.push({ kind: FrameKind.OPEN, streamId: id, port: step.port });
      }
    } else if (step.t === 'localWrite') {
      const id = model.write(step.pick, step.length);

      if (id !== undefined) (streams.get(id) as TunnelStream).write(Buffer.alloc(step.length));
    } else if (step.t === 'localReset') {
      const id = model.resetLocal(step.pick);

      if (id !== undefined) {
        (streams.get(id) as TunnelStream).reset(ResetReason.CANCEL);
        expected.push({ kind: FrameKind.RESET, streamId: id, reason: ResetReason.CANCEL });
      }
    } else {
      const frames: PeerFrame[] = [];
      let expectedError: ErrorCode | undefined;

      for (const template of step.frames) {
        const frame = model.resolve(template);

        frames.push(frame);

        const outcome = model.receive(frame);

        if (typeof outcome === 'string') {
          expectedError = outcome;
          break;
        }

        expected.push(...outcome);
      }

      received.push(...frames);

      const thrown = caughtFrom(() => session.receive(Buffer.concat(frames.map(peerBytes))));

      if (expectedError === undefined) {
        expect(thrown).toBeUndefined();
      } else {
        expectProtocolError(thrown, expectedError);
        error = expectedError;
      }
    }

    // Control frames exactly as the rules say; DATA by how many bytes went out (a writer's
    // bytes may be cut into frames in more than one right way).
    const sent = transport.sent.slice(before);

    expect(sent.filter((f) => f.kind !== FrameKind.DATA)).toEqual(expected);

    for (const frame of sent) {
      if (frame.kind === FrameKind.DATA) {
        expect(frame.payload.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD_BYTES);
        dataSent.set(frame.streamId, (dataSent.get(frame.streamId) ?? 0) + frame.payload.length);
      }
    }

    if (error !== undefined) break;

    // Bounded: no more streams than allowed, and each holds at most one window of unread bytes
    // (nothing reads here, so no credit is ever granted back).
    expect(session.streamCount).toBe(model.streams.size);
    expect(session.streamCount).toBeLessThanOrEqual(maxStreams);

    for (const [id, stream] of streams) {
      const modelled = model.streams.get(id);

      expect(stream.destroyed).toBe(modelled === undefined);

      if (modelled !== undefined) {
        expect(stream.readableLength).toBe(INITIAL_STREAM_WINDOW_BYTES - modelled.receiveWindow);
        expect(stream.readableLength).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW_BYTES);
        // A writer sends what it wrote as far as the peer's credit goes, and not a byte more.
        expect(dataSent.get(id) ?? 0).toBe(Math.min(modelled.written, modelled.credit));
      }
    }
  }

  if (error !== undefined) {
    // A session that has thrown refuses everything after, still only with ProtocolErrors.
    expectProtocolError(
      caughtFrom(() => session.receive(rawFrame(FrameKind.END, 1, Buffer.alloc(0)))),
    );
  }

  // Closing the connection lets go of every stream, and a closed session ignores input.
  session.close();
  expect(session.streamCount).toBe(0);
  expect(session.canOpen).toBe(false);
  expect(caughtFrom(() => session.receive(rawFrame(99, 0, Buffer.alloc(0))))).toBeUndefined();

  for (const stream of streams.values()) expect(stream.destroyed).toBe(true);

  return { error, sent: transport.sent, received };
}

describe('StreamSession against a hostile peer', () => {
  it.each(['agent', 'relay'] as const)(
    'as the %s, handles or refuses with a ProtocolError every frame sequence, as the rules say',
    (role) => {
      fc.assert(
        fc.property(stepsArb(role), fc.integer({ min: 1, max: 5 }), (steps, maxStreams) => {
          runAgainstModel(role, maxStreams, steps);
        }),
        { ...RUNS, numRuns: 250 },
      );
    },
  );

  it.each(['agent', 'relay'] as const)(
    'as the %s, ends the same way however the peer’s bytes are cut into messages',
    (role) => {
      fc.assert(
        fc.property(
          fc.array(templateArb(role), { maxLength: 30 }),
          cutsArb,
          fc.integer({ min: 1, max: 5 }),
          (templates, cuts, maxStreams) => {
            // Frame by frame first, which also works out the ids; then the same bytes cut
            // anywhere must give the same answers and the same error.
            const reference = runAgainstModel(
              role,
              maxStreams,
              templates.map((template) => ({ t: 'peer' as const, frames: [template] })),
            );
            const { session, transport } = harness(role, maxStreams);
            let error: unknown;

            for (const chunk of split(Buffer.concat(reference.received.map(peerBytes)), cuts)) {
              error = caughtFrom(() => session.receive(chunk));
              if (error !== undefined) break;
            }

            if (reference.error === undefined) {
              expect(error).toBeUndefined();
            } else {
              expectProtocolError(error, reference.error);
            }

            expect(transport.sent).toEqual(reference.sent);
            session.close();
          },
        ),
        { ...RUNS, numRuns: 150 },
      );
    },
  );

  it('holds at most maxStreams streams however many the peer opens', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 200 }),
        (maxStreams, opens) => {
          const { session, transport } = harness('agent', maxStreams);
          const bytes = Buffer.concat(
            Array.from({ length: opens }, (_, i) => rawFrame(FrameKind.OPEN, 2 * i + 1, u16(80))),
          );

          session.receive(bytes);

          expect(session.streamCount).toBe(Math.min(maxStreams, opens));
          expect(transport.sent).toEqual(
            Array.from({ length: Math.max(0, opens - maxStreams) }, (_, i) => ({
              kind: FrameKind.RESET,
              streamId: 2 * (maxStreams + i) + 1,
              reason: ResetReason.REFUSED_STREAM,
            })),
          );
          session.close();
        },
      ),
      { ...RUNS, numRuns: 100 },
    );
  });
});
