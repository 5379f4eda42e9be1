import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { keepAlive } from '@porthole/shared';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

const INTERVAL_MS = 20;

/** A connected pair: `server` is the relay-side end that runs keepAlive, `client` the peer. */
interface Pair {
  server: WebSocket;
  client: WebSocket;
  /** The client's TCP connection, from its upgrade response. */
  clientSocket: Socket;
}

const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function connectPair(clientOptions: WebSocket.ClientOptions = {}): Promise<Pair> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });

  await once(wss, 'listening');

  const { port } = wss.address() as AddressInfo;
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, clientOptions);
  const upgraded = once(client, 'upgrade') as Promise<[IncomingMessage]>;

  await once(client, 'open');

  const [server] = await accepted;
  const [res] = await upgraded;

  cleanups.push(() => {
    client.terminate();
    server.terminate();
    wss.close();
  });

  return { server, client, clientSocket: res.socket as Socket };
}

// Resolves once `emitter` has emitted `event` `count` times.
function times(emitter: WebSocket, event: 'pong' | 'message', count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = () => {
      seen += 1;
      if (seen === count) {
        emitter.off(event, listener);
        resolve();
      }
    };

    emitter.on(event, listener);
  });
}

describe('keepAlive', () => {
  it('never declares a healthy peer dead over many intervals', async () => {
    const { server } = await connectPair();
    let dead = 0;

    cleanups.push(keepAlive(server, () => (dead += 1), INTERVAL_MS, 2));
    await times(server, 'pong', 15);

    expect(dead).toBe(0);
    expect(server.readyState).toBe(WebSocket.OPEN);
  });

  it('declares a peer that stops reading dead and terminates the connection', async () => {
    const { server, clientSocket } = await connectPair();
    let dead = 0;
    const closed = once(server, 'close');

    keepAlive(server, () => (dead += 1), INTERVAL_MS, 2);
    // First proof that the peer answers, then it stops reading: pings pile up unanswered.
    await times(server, 'pong', 2);
    clientSocket.pause();
    await closed;

    expect(dead).toBe(1);
    expect(server.readyState).toBe(WebSocket.CLOSED);
  });

  it('takes any message from the peer as a sign of life', async () => {
    // This peer never answers a ping with a pong, only with a message.
    const { server, client } = await connectPair({ autoPong: false });
    let dead = 0;

    client.on('ping', () => client.send('still here'));
    keepAlive(server, () => (dead += 1), INTERVAL_MS, 2);
    await times(server, 'message', 15);

    expect(dead).toBe(0);
    expect(server.readyState).toBe(WebSocket.OPEN);
  });

  it('declares a peer dead that neither answers pings nor sends anything', async () => {
    // The same peer as above, silent: shows that it was the messages that kept it alive.
    const { server } = await connectPair({ autoPong: false });
    let dead = 0;
    const closed = once(server, 'close');

    keepAlive(server, () => (dead += 1), INTERVAL_MS, 2);
    await closed;

    expect(dead).toBe(1);
  });
});
