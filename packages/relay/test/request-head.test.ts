import { describe, expect, it } from 'vitest';

import { closeAfterAnswer, isLoopbackHost } from '../src/request-head.js';

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
