import {
  encodeData,
  FRAME_HEADER_BYTES,
  FramePool,
  framePool,
  MIN_POOLED_PAYLOAD_BYTES,
  SEND_FRAME_PAYLOAD_BYTES,
} from '@porthole/shared';
import { describe, expect, it } from 'vitest';

describe('FramePool', () => {
  it('lends a buffer again once it is given back, through any view into it', () => {
    const pool = new FramePool(1024, 64 * 1024);
    const first = pool.take();

    pool.give(first.subarray(0, 100));

    expect(pool.take()).toBe(first);
  });

  it('takes back a lent buffer only once', () => {
    const pool = new FramePool(1024, 64 * 1024);
    const buf = pool.take();

    pool.give(buf);
    pool.give(buf);

    expect(pool.freeCount).toBe(1);
    expect(pool.take()).toBe(buf);
    expect(pool.take()).not.toBe(buf);
  });

  it('leaves buffers it did not lend to the garbage collector', () => {
    const pool = new FramePool(1024, 64 * 1024);
    const other = new FramePool(1024, 64 * 1024);

    pool.give(Buffer.alloc(pool.bufferBytes));
    pool.give(other.take());

    expect(pool.freeCount).toBe(0);
  });

  it('keeps at most its byte limit of idle buffers', () => {
    const pool = new FramePool(1024 - FRAME_HEADER_BYTES, 4 * 1024);
    const lent = Array.from({ length: 10 }, () => pool.take());

    for (const buf of lent) pool.give(buf);

    expect(pool.freeCount).toBe(4);
  });
});

describe('encodeData', () => {
  it('builds a bulk frame in a buffer lent by the frame pool', () => {
    const payload = Buffer.alloc(SEND_FRAME_PAYLOAD_BYTES, 7);
    const frame = encodeData(3, [payload], payload.length);

    expect(frame.length).toBe(FRAME_HEADER_BYTES + payload.length);
    expect(frame.buffer.byteLength).toBe(framePool.bufferBytes);
    expect(frame.subarray(FRAME_HEADER_BYTES).equals(payload)).toBe(true);
  });

  it('builds a small frame outside the frame pool', () => {
    const frame = encodeData(3, [Buffer.from('hello')], 5);

    expect(frame.length).toBe(FRAME_HEADER_BYTES + 5);
    expect(frame.buffer.byteLength).not.toBe(framePool.bufferBytes);
    expect(MIN_POOLED_PAYLOAD_BYTES).toBeGreaterThan(5);
  });
});
