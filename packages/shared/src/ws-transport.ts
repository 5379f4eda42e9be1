import type { Duplex } from 'node:stream';

import WebSocket from 'ws';

import { framePool } from './frame-pool.js';
import { MAX_MISSED_PINGS, PING_INTERVAL_MS, TRANSPORT_HIGH_WATER_BYTES } from './limits.js';
import type { FrameTransport } from './stream-session.js';

/**
 * Carries a session's frames over a ws WebSocket. `socket` is the connection under it (from
 * the upgrade), whose `drain` event tells waiting stream writers to go on.
 */
export class WebSocketTransport implements FrameTransport {
  readonly #ws: WebSocket;
  #waiters: (() => void)[] = [];

  constructor(ws: WebSocket, socket: Duplex) {
    this.#ws = ws;
    socket.on('drain', () => this.#wake());
    socket.once('close', () => this.#wakeAll());
  }

  // ws calls back once the socket has taken the frame's bytes (or failed): only then may a
  // pooled frame buffer be used again. The agent's all-zero mask and the relay's unmasked
  // frames leave the bytes in place; with a real mask ws masks a copy, never this buffer.
  send(frame: Buffer): void {
    if (this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(frame, () => framePool.give(frame));
    } else {
      framePool.give(frame);
    }
  }

  get congested(): boolean {
    return this.#ws.bufferedAmount > TRANSPORT_HIGH_WATER_BYTES;
  }

  whenDrained(callback: () => void): void {
    this.#waiters.push(callback);
  }

  #wake(): void {
    while (this.#waiters.length > 0 && !this.congested) {
      (this.#waiters.shift() as () => void)();
    }
  }

  #wakeAll(): void {
    const waiters = this.#waiters;

    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}

/**
 * Pings the peer every `intervalMs` and terminates the connection after `maxMissed` pings in a
 * row went unanswered. Any message from the peer counts as an answer: a busy link may delay a
 * pong behind data. Returns a function that stops it.
 */
export function keepAlive(
  ws: WebSocket,
  onDead: () => void,
  intervalMs = PING_INTERVAL_MS,
  maxMissed = MAX_MISSED_PINGS,
): () => void {
  let missed = 0;
  const alive = (): void => {
    missed = 0;
  };

  ws.on('pong', alive);
  ws.on('message', alive);

  const timer = setInterval(() => {
    if (missed >= maxMissed) {
      clearInterval(timer);
      onDead();
      ws.terminate();
      return;
    }

    missed += 1;
    ws.ping();
  }, intervalMs);

  timer.unref();

  const stop = (): void => {
    clearInterval(timer);
    ws.off('pong', alive);
    ws.off('message', alive);
  };

  ws.once('close', stop);

  return stop;
}

/** ws options both ends share: no compression (it costs CPU and the payload is mostly TLS or
 * small), and the protocol's message limit. */
export const WS_OPTIONS = {
  perMessageDeflate: false,
  skipUTF8Validation: false,
} as const;
