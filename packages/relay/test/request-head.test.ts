import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  closeAfterAnswer,
  isLoopbackHost,
  type Peeked,
  peekRequestHead,
} from '../src/request-head.js';

const head = (...lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

describe('closeAfterAnswer', () => {
  it('replaces keep-alive fields with Connection: close and keeps the body bytes', () => {
    const request = Buffer.concat([
      head(
        'POST / HTTP/1.1',
        'Host: localhost:1455',
        'Connection: keep-alive',
        'Keep-Alive: 5',
        'Content-Length: 4',
      ),
      Buffer.from('code'),
    ]);

    expect(closeAfterAnswer(request).toString('latin1')).toBe(
      'POST / HTTP/1.1\r\nHost: localhost:1455\r\nContent-Length: 4\r\nConnection: close\r\n\r\ncode',
    );
  });

  it('adds Connection: close to a head without one', () => {
    expect(
      closeAfterAnswer(head('GET /cb?code=x HTTP/1.1', 'Host: localhost')).toString(),
    ).toContain('\r\nConnection: close\r\n\r\n');
  });

  it('leaves a WebSocket upgrade as it is', () => {
    const upgrade = head(
      'GET /ws HTTP/1.1',
      'Host: localhost',
      'Connection: Upgrade',
      'Upgrade: websocket',
    );

    expect(closeAfterAnswer(upgrade)).toBe(upgrade);
  });
});

describe('isLoopbackHost', () => {
  it.each(['localhost', 'localhost:1455', '127.0.0.1:8080', '[::1]:7777', 'LOCALHOST'])(
    'accepts %s',
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
    },
  );

  it.each(['evil.example', 'evil.example:1455', '127.0.0.1.evil.example', '[::2]:80', '10.0.0.1'])(
    'refuses %s',
    (host) => {
      expect(isLoopbackHost(host)).toBe(false);
    },
  );
});

describe('peekRequestHead', () => {
  const server = createServer();
  const accepted: Socket[] = [];

  beforeAll(async () => {
    server.on('connection', (socket) => accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  afterAll(() => {
    for (const socket of accepted) socket.destroy();
    server.close();
  });

  // Sends `chunks` one by one over a real connection and returns what the relay made of them.
  async function peek(...chunks: string[]): Promise<Peeked> {
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const [socket] = (await once(server, 'connection')) as [Socket];
    const peeked = peekRequestHead(socket, false);

    client.on('error', () => undefined);
    for (const chunk of chunks) {
      client.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }

    const result = await peeked;

    client.destroy();
    return result;
  }

  const hostOf = (peeked: Peeked) => (peeked.kind === 'http' ? peeked.head.host : peeked.kind);

  it('reads the Host of a request with a lower-case method', async () => {
    expect(hostOf(await peek('foo / HTTP/1.1\r\nHost: evil.example\r\n\r\n'))).toBe('evil.example');
  });

  it('reads the Host of a request whose target is longer than any URL a tool sends', async () => {
    const target = `/callback?pad=${'a'.repeat(20_000)}`;

    expect(hostOf(await peek(`GET ${target} HTTP/1.1\r\nHost: evil.example\r\n\r\n`))).toBe(
      'evil.example',
    );
  });

  it('reads a request line that arrives a few bytes at a time', async () => {
    const peeked = await peek('ge', 't /cb?state=s1 HT', 'TP/1.', '1\r\nHost: localhost\r\n\r\n');

    expect(peeked.kind === 'http' && peeked.head).toEqual({
      method: 'get',
      target: '/cb?state=s1',
      host: 'localhost',
      state: 's1',
    });
  });

  it('keeps a foreign Host when the head also names localhost', async () => {
    const peeked = await peek('GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n');

    expect(hostOf(peeked)).toBe('evil.example');
  });

  it('takes bytes that cannot start a request line for another protocol', async () => {
    for (const bytes of ['\x16\x03\x01\x02\x00', 'PING\r\n', 'GET /a b c']) {
      expect((await peek(bytes)).kind).toBe('raw');
    }
  });

  it('refuses a request head over the limit', async () => {
    expect((await peek(`GET /${'a'.repeat(40_000)}`)).kind).toBe('too-large');
  });
});
