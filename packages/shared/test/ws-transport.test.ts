import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { framePool, WebSocketTransport } from '@porthole/shared';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

// Sizes on each side of the edges of the WebSocket length field (125/126, 65535/65536), then
// 19 MiB of pooled frames in one burst, more than the kernel's socket buffers take at once: the
// socket queues the rest, and a buffer handed back to the pool before the socket had taken its
// bytes would carry another frame's bytes by the time it is written.
const SIZES = [0, 1, 125, 126, 127, 4096, 65_535, 65_536, 200_000, ...Array(400).fill(48 * 1024)];

interface Pair {
  server: WebSocket;
  serverSocket: Socket;
  client: WebSocket;
  clientSocket: Socket;
}

const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

// A relay-side and an agent-side end, as the real ones are set up: the agent with the all-zero
// masking key, ws on both ends checking every frame it receives.
async function connectPair(): Promise<Pair> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });

  await once(wss, 'listening');

  const { port } = wss.address() as AddressInfo;
  const accepted = once(wss, 'connection') as Promise<[WebSocket, IncomingMessage]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, {
    perMessageDeflate: false,
    generateMask: (mask) => mask.fill(0),
  });
  const upgraded = once(client, 'upgrade') as Promise<[IncomingMessage]>;

  await once(client, 'open');

  const [[server, request], [response]] = await Promise.all([accepted, upgraded]);

  cleanups.push(() => {
    client.terminate();
    server.terminate();
    wss.close();
  });

  return {
    server,
    serverSocket: request.socket as Socket,
    client,
    clientSocket: response.socket as Socket,
  };
}

function received(ws: WebSocket, count: number): Promise<Buffer[]> {
  const messages: Buffer[] = [];

  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data: Buffer) => {
      messages.push(Buffer.from(data));
      if (messages.length === count) resolve(messages);
    });
  });
}

// A frame as the sessions send them: pooled when it fits a pool buffer, else a buffer of its own.
function frameOf(size: number, fill: number): Buffer {
  const frame =
    size <= framePool.bufferBytes ? framePool.take().subarray(0, size) : Buffer.alloc(size);

  return frame.fill(fill);
}

describe('WebSocketTransport', () => {
  for (const side of ['agent', 'relay'] as const) {
    it(`delivers every frame the ${side} sends, whole and in order, among ws's own pings`, async () => {
      const pair = await connectPair();
      const [from, socket, to] =
        side === 'agent'
          ? [pair.client, pair.clientSocket, pair.server]
          : [pair.server, pair.serverSocket, pair.client];
      const transport = new WebSocketTransport(from, socket);
      const messages = received(to, SIZES.length);
      const pings: number[] = [];

      to.on('ping', () => pings.push(pings.length));
      SIZES.forEach((size, i) => {
        transport.send(frameOf(size, i));
        from.ping();
      });

      const got = await messages;

      expect(got.map((m) => m.length)).toEqual(SIZES);
      got.forEach((message, i) => expect(message.every((byte) => byte === i % 256)).toBe(true));
      expect(pings).toHaveLength(SIZES.length);
    });
  }

  it('sends nothing once the WebSocket is closing', async () => {
    const { client, clientSocket, server } = await connectPair();
    const transport = new WebSocketTransport(client, clientSocket);
    const messages: Buffer[] = [];

    server.on('message', (data: Buffer) => messages.push(data));
    client.close();
    transport.send(frameOf(10, 1));
    await once(server, 'close');

    expect(messages).toEqual([]);
  });
});
