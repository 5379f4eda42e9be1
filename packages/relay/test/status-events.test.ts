import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';

import { STATUS_HEARTBEAT_MS } from '@porthole/shared';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { StatusEvents } from '../src/status-events.js';

/** Just enough of a ServerResponse to follow what an event stream writes. */
class FakeResponse extends EventEmitter {
  text = '';
  status = 0;
  ended = false;
  writableLength = 0;

  writeHead(status: number): void {
    this.status = status;
  }

  write(text: string): void {
    this.text += text;
  }

  end(): void {
    this.ended = true;
    this.emit('close');
  }

  destroy(): void {
    this.emit('close');
  }
}

function subscribe(events: StatusEvents): FakeResponse {
  const res = new FakeResponse();

  events.subscribe(res as unknown as ServerResponse);
  return res;
}

describe('StatusEvents', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts with a snapshot and sends one snapshot for a burst of changes', () => {
    let n = 0;
    const events = new StatusEvents(() => ({ n: ++n }));
    const res = subscribe(events);

    events.changed();
    events.changed();
    events.changed();
    vi.advanceTimersByTime(1_000);

    expect(res.status).toBe(200);
    expect(res.text).toBe('retry: 2000\ndata: {"n":1}\n\ndata: {"n":2}\n\n');
  });

  it('sends a heartbeat comment every 15 s', () => {
    const res = subscribe(new StatusEvents(() => ({})));

    vi.advanceTimersByTime(STATUS_HEARTBEAT_MS * 2);

    expect(res.text.match(/^: heartbeat\n\n/gm)).toHaveLength(2);
  });

  it('drops a page that stopped reading instead of buffering for it', () => {
    const events = new StatusEvents(() => ({}));
    const res = subscribe(events);
    const closed = vi.fn();

    res.on('close', closed);
    res.writableLength = 2 * 1024 * 1024;
    events.changed();
    vi.advanceTimersByTime(1_000);

    expect(closed).toHaveBeenCalledOnce();
  });

  it('ends every stream on close and takes no new one', () => {
    const events = new StatusEvents(() => ({}));
    const res = subscribe(events);

    events.close();

    expect(res.ended).toBe(true);
    expect(events.full).toBe(true);
  });
});
