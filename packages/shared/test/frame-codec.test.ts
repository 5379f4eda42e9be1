import {
  CloseCodes,
  encodeData,
  encodeEnd,
  encodeOpen,
  encodeReset,
  encodeWindow,
  ErrorCodes,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_PAYLOAD_BYTES,
  ProtocolError,
  ResetReason,
} from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { encodeFrame } from './encode-frame.js';
import { thrownBy } from './thrown-by.js';

/** A frame header written out by hand: kind u8, stream id u32 BE, payload length u32 BE. */
function rawHeader(kind: number, streamId: number, length: number): number[] {
  return [
    kind,
    (streamId >>> 24) & 0xff,
    (streamId >>> 16) & 0xff,
    (streamId >>> 8) & 0xff,
    streamId & 0xff,
    (length >>> 24) & 0xff,
    (length >>> 16) & 0xff,
    (length >>> 8) & 0xff,
    length & 0xff,
  ];
}

function decodeAll(chunks: readonly Buffer[]): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => frames.push(frame));

  for (const chunk of chunks) {
    decoder.push(chunk);
  }

  return frames;
}

function expectProtocolError(fn: () => unknown, code: string): void {
  const err = thrownBy(fn);

  expect(err).toBeInstanceOf(ProtocolError);
  expect(err).toMatchObject({ code, closeCode: CloseCodes.PROTOCOL_ERROR });
}

const RAW_FRAMES: { name: string; bytes: number[]; frame: Frame; encode: () => Buffer }[] = [
  {
    name: 'OPEN',
    bytes: [...rawHeader(1, 7, 2), 0x1f, 0x90],
    frame: { kind: FrameKind.OPEN, streamId: 7, port: 8080 },
    encode: () => encodeOpen(7, 8080),
  },
  {
    name: 'DATA',
    bytes: [...rawHeader(2, 0x01020304, 3), 0x61, 0x62, 0x63],
    frame: { kind: FrameKind.DATA, streamId: 0x01020304, payload: Buffer.from('abc') },
    encode: () => encodeData(0x01020304, [Buffer.from('abc')], 3),
  },
  {
    name: 'WINDOW',
    bytes: [...rawHeader(3, 9, 4), 0x00, 0x04, 0x00, 0x00],
    frame: { kind: FrameKind.WINDOW, streamId: 9, increment: 256 * 1024 },
    encode: () => encodeWindow(9, 256 * 1024),
  },
  {
    name: 'END',
    bytes: rawHeader(4, 0xffffffff, 0),
    frame: { kind: FrameKind.END, streamId: 0xffffffff },
    encode: () => encodeEnd(0xffffffff),
  },
  {
    name: 'RESET',
    bytes: [...rawHeader(5, 2, 2), 0x00, 0x04],
    frame: { kind: FrameKind.RESET, streamId: 2, reason: ResetReason.REFUSED_STREAM },
    encode: () => encodeReset(2, ResetReason.REFUSED_STREAM),
  },
];

// One frame of each kind, DATA in between, as a peer could send them back to back.
const SEQUENCE: Frame[] = [
  { kind: FrameKind.OPEN, streamId: 1, port: 443 },
  { kind: FrameKind.DATA, streamId: 1, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') },
  { kind: FrameKind.WINDOW, streamId: 1, increment: 0xffffffff },
  { kind: FrameKind.DATA, streamId: 3, payload: Buffer.from([0]) },
  { kind: FrameKind.END, streamId: 1 },
  { kind: FrameKind.RESET, streamId: 3, reason: ResetReason.INTERNAL },
];

const SEQUENCE_BYTES = Buffer.concat(SEQUENCE.map(encodeFrame));

describe('frame encoders', () => {
  it.each(RAW_FRAMES)('lays out a $name frame as kind, stream id, length, payload', (c) => {
    expect([...c.encode()]).toEqual(c.bytes);
  });

  it('concatenates the chunks of a DATA frame into one payload', () => {
    const frame = encodeData(
      5,
      [Buffer.from('he'), new Uint8Array([0x6c, 0x6c]), Buffer.from('o')],
      5,
    );

    expect(frame).toEqual(Buffer.from([...rawHeader(2, 5, 5), ...Buffer.from('hello')]));
  });
});

describe('FrameDecoder', () => {
  it.each(RAW_FRAMES)('decodes a $name frame from its raw bytes', (c) => {
    expect(decodeAll([Buffer.from(c.bytes)])).toEqual([c.frame]);
  });

  it.each(RAW_FRAMES)('round-trips a $name frame through its encoder', (c) => {
    expect(decodeAll([c.encode()])).toEqual([c.frame]);
  });

  it('decodes several frames coalesced in one chunk', () => {
    expect(decodeAll([SEQUENCE_BYTES])).toEqual(SEQUENCE);
  });

  it('decodes the same frames when the input is split at any byte boundary', () => {
    for (let at = 0; at <= SEQUENCE_BYTES.length; at += 1) {
      const frames = decodeAll([SEQUENCE_BYTES.subarray(0, at), SEQUENCE_BYTES.subarray(at)]);

      expect(frames, `split at byte ${at}`).toEqual(SEQUENCE);
    }
  });

  it('decodes the same frames when the input is split into three chunks at any two boundaries', () => {
    const length = SEQUENCE_BYTES.length;

    for (let first = 0; first <= length; first += 1) {
      for (let second = first; second <= length; second += 1) {
        const frames = decodeAll([
          SEQUENCE_BYTES.subarray(0, first),
          SEQUENCE_BYTES.subarray(first, second),
          SEQUENCE_BYTES.subarray(second),
        ]);

        expect(frames, `split at bytes ${first} and ${second}`).toEqual(SEQUENCE);
      }
    }
  });

  it('decodes the same frames when fed one byte at a time', () => {
    const chunks = [...SEQUENCE_BYTES].map((byte) => Buffer.from([byte]));

    expect(decodeAll(chunks)).toEqual(SEQUENCE);
  });

  it('holds a partial frame without emitting it until the rest arrives', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));
    const bytes = encodeData(1, [Buffer.from('partial')], 7);

    decoder.push(bytes.subarray(0, FRAME_HEADER_BYTES + 3));

    expect(frames).toEqual([]);
    expect(decoder.bufferedBytes).toBe(3);

    decoder.push(bytes.subarray(FRAME_HEADER_BYTES + 3));

    expect(frames).toEqual([
      { kind: FrameKind.DATA, streamId: 1, payload: Buffer.from('partial') },
    ]);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('accepts a DATA frame of exactly MAX_FRAME_PAYLOAD_BYTES', () => {
    const payload = Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 0x5a);
    const frames = decodeAll([encodeData(1, [payload], payload.length)]);

    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ kind: FrameKind.DATA, streamId: 1 });
    expect(frames[0]?.kind === FrameKind.DATA && frames[0].payload.equals(payload)).toBe(true);
  });

  it('refuses a header announcing more than MAX_FRAME_PAYLOAD_BYTES before the payload arrives', () => {
    const decoder = new FrameDecoder(() => undefined);
    const header = Buffer.from(rawHeader(FrameKind.DATA, 1, MAX_FRAME_PAYLOAD_BYTES + 1));

    expectProtocolError(() => decoder.push(header), ErrorCodes.FRAME_TOO_LARGE);
  });

  it('refuses an oversized header split across chunks as soon as the header is whole', () => {
    const decoder = new FrameDecoder(() => undefined);
    const header = Buffer.from(rawHeader(FrameKind.DATA, 1, 0xffffffff));

    decoder.push(header.subarray(0, 4));

    expectProtocolError(() => decoder.push(header.subarray(4)), ErrorCodes.FRAME_TOO_LARGE);
  });

  it('applies a payload limit given to its constructor', () => {
    const decoder = new FrameDecoder(() => undefined, 16);

    expectProtocolError(
      () => decoder.push(encodeData(1, [Buffer.alloc(17)], 17)),
      ErrorCodes.FRAME_TOO_LARGE,
    );
  });

  it.each([0, 6, 0x7f, 0xff])('refuses a frame of unknown kind %i', (kind) => {
    const decoder = new FrameDecoder(() => undefined);

    expectProtocolError(
      () => decoder.push(Buffer.from([...rawHeader(kind, 1, 2), 0, 80])),
      ErrorCodes.FRAME_MALFORMED,
    );
  });

  it.each(RAW_FRAMES)('refuses a $name frame on stream id 0', (c) => {
    const bytes = Buffer.from(c.bytes);

    bytes.writeUInt32BE(0, 1);

    expectProtocolError(
      () => new FrameDecoder(() => undefined).push(bytes),
      ErrorCodes.FRAME_MALFORMED,
    );
  });

  it.each([
    { name: 'OPEN', kind: FrameKind.OPEN, length: 0 },
    { name: 'OPEN', kind: FrameKind.OPEN, length: 1 },
    { name: 'OPEN', kind: FrameKind.OPEN, length: 3 },
    { name: 'WINDOW', kind: FrameKind.WINDOW, length: 0 },
    { name: 'WINDOW', kind: FrameKind.WINDOW, length: 2 },
    { name: 'WINDOW', kind: FrameKind.WINDOW, length: 8 },
    { name: 'RESET', kind: FrameKind.RESET, length: 0 },
    { name: 'RESET', kind: FrameKind.RESET, length: 4 },
    { name: 'END', kind: FrameKind.END, length: 1 },
    { name: 'END', kind: FrameKind.END, length: 2 },
    { name: 'DATA', kind: FrameKind.DATA, length: 0 },
  ])('refuses a $name frame with a payload of $length bytes', ({ kind, length }) => {
    const decoder = new FrameDecoder(() => undefined);
    const bytes = Buffer.from([
      ...rawHeader(kind, 1, length),
      ...new Array<number>(length).fill(1),
    ]);

    expectProtocolError(() => decoder.push(bytes), ErrorCodes.FRAME_MALFORMED);
  });

  it('refuses a malformed header before its payload arrives', () => {
    const decoder = new FrameDecoder(() => undefined);

    expectProtocolError(
      () => decoder.push(Buffer.from(rawHeader(FrameKind.OPEN, 1, 3))),
      ErrorCodes.FRAME_MALFORMED,
    );
  });

  it('delivers the frames before a bad one in the same chunk, then throws', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));
    const chunk = Buffer.concat([encodeOpen(1, 80), encodeEnd(1), Buffer.from(rawHeader(9, 1, 0))]);

    expectProtocolError(() => decoder.push(chunk), ErrorCodes.FRAME_MALFORMED);
    expect(frames).toEqual([
      { kind: FrameKind.OPEN, streamId: 1, port: 80 },
      { kind: FrameKind.END, streamId: 1 },
    ]);
  });

  it('refuses any further input after an error', () => {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((frame) => frames.push(frame));

    expectProtocolError(
      () => decoder.push(Buffer.from(rawHeader(FrameKind.DATA, 1, 0))),
      ErrorCodes.FRAME_MALFORMED,
    );
    expectProtocolError(() => decoder.push(encodeOpen(1, 80)), ErrorCodes.FRAME_MALFORMED);
    expect(frames).toEqual([]);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('refuses further input after a frame-too-large error', () => {
    const decoder = new FrameDecoder(() => undefined);

    expectProtocolError(
      () => decoder.push(Buffer.from(rawHeader(FrameKind.DATA, 1, MAX_FRAME_PAYLOAD_BYTES + 1))),
      ErrorCodes.FRAME_TOO_LARGE,
    );
    expectProtocolError(() => decoder.push(encodeEnd(1)), ErrorCodes.FRAME_MALFORMED);
  });

  it('returns a DATA payload that arrived in one chunk without copying it', () => {
    // Allocated on its own (not from Buffer's shared pool) so that a copy could not share it.
    const payloadBytes = 64 * 1024;
    const open = encodeOpen(1, 80);
    const chunk = Buffer.alloc(open.length + FRAME_HEADER_BYTES + payloadBytes);

    open.copy(chunk, 0);
    encodeData(1, [Buffer.alloc(payloadBytes, 7)], payloadBytes).copy(chunk, open.length);

    const frames = decodeAll([chunk]);
    const data = frames[1];

    if (data?.kind !== FrameKind.DATA) {
      throw new Error('expected a DATA frame');
    }

    expect(data.payload.buffer).toBe(chunk.buffer);
    expect(data.payload.byteOffset).toBe(chunk.byteOffset + open.length + FRAME_HEADER_BYTES);
    expect(data.payload.length).toBe(payloadBytes);

    chunk[chunk.length - 1] = 8;

    expect(data.payload[payloadBytes - 1]).toBe(8);
  });
});
