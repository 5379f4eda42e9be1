import { PassThrough } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { responseStatus, watchResponse } from '../src/exchange-watch.js';
import type { CallbackResult, RequestTrace } from '../src/relay-events.js';

function recordingTrace(): RequestTrace & { settled: [CallbackResult, number | null][] } {
  const settled: [CallbackResult, number | null][] = [];

  return {
    settled,
    route: () => undefined,
    settle: (result, status) => settled.push([result, status]),
    end: () => undefined,
  };
}

describe('responseStatus', () => {
  it('reads the status code of an HTTP/1.x response head', () => {
    expect(responseStatus(Buffer.from('HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n'))).toBe(302);
    expect(responseStatus(Buffer.from('HTTP/1.0 200 OK\r\n'))).toBe(200);
  });

  it('answers null for bytes that are not a response head', () => {
    expect(responseStatus(Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'))).toBeNull();
    expect(responseStatus(Buffer.from('HTTP/1.1 2x0 OK\r\n'))).toBeNull();
    expect(responseStatus(Buffer.from('HTTP/1.1'))).toBeNull();
  });
});

describe('watchResponse', () => {
  it('settles once with the status of a head split across chunks, and counts every byte', async () => {
    const stream = new PassThrough();
    const trace = recordingTrace();
    const bytes = { toContainer: 0, toBrowser: 0 };
    const received: Buffer[] = [];

    stream.on('data', (chunk: Buffer) => received.push(chunk));
    watchResponse(stream, trace, bytes, true);
    const parts = ['HTTP/1.', '1 404 Not Found\r\n\r\n', 'body'];

    for (const part of parts) stream.write(part);
    stream.end();
    await new Promise((resolve) => stream.once('end', resolve));

    expect(trace.settled).toEqual([['delivered', 404]]);
    expect(bytes.toBrowser).toBe(parts.join('').length);
    expect(Buffer.concat(received).toString()).toBe(parts.join(''));
  });

  it('settles a connection that is not HTTP on its first bytes, without a status', async () => {
    const stream = new PassThrough();
    const trace = recordingTrace();

    watchResponse(stream, trace, { toContainer: 0, toBrowser: 0 }, false);
    stream.end('hi');
    await new Promise((resolve) => stream.once('end', resolve));

    expect(trace.settled).toEqual([['delivered', null]]);
  });
});
