import type { ServerResponse } from 'node:http';

import {
  MAX_STATUS_FEED_BUFFER_BYTES,
  MAX_STATUS_SUBSCRIBERS,
  STATUS_HEARTBEAT_MS,
  STATUS_UPDATE_DELAY_MS,
} from '@porthole/shared';

/**
 * `GET /events`: server-sent events, one JSON snapshot of the relay's state per change and a
 * heartbeat comment every 15 s while nothing changes.
 */
export class StatusEvents {
  readonly #subscribers = new Set<ServerResponse>();
  readonly #snapshot: () => unknown;
  #pending: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(snapshot: () => unknown) {
    this.#snapshot = snapshot;
  }

  /** Whether no more pages may subscribe now (too many, or the relay is stopping). */
  get full(): boolean {
    return this.#closed || this.#subscribers.size >= MAX_STATUS_SUBSCRIBERS;
  }

  /** Starts an event stream on `res`, beginning with the current snapshot. */
  subscribe(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.write(`retry: 2000\n${this.#event()}`);
    this.#subscribers.add(res);
    res.on('close', () => this.#remove(res));

    this.#heartbeat ??= setInterval(() => this.#send(': heartbeat\n\n'), STATUS_HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Something shown on the page changed: subscribers get a snapshot shortly. */
  changed(): void {
    if (this.#pending !== undefined || this.#subscribers.size === 0) return;

    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.#send(this.#event());
    }, STATUS_UPDATE_DELAY_MS);
    this.#pending.unref();
  }

  /** Ends every event stream: the relay is stopping, and open streams would keep it up. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#pending);

    for (const res of [...this.#subscribers]) res.end();
  }

  #event(): string {
    return `data: ${JSON.stringify(this.#snapshot())}\n\n`;
  }

  #send(text: string): void {
    for (const res of this.#subscribers) {
      if (res.writableLength > MAX_STATUS_FEED_BUFFER_BYTES) {
        res.destroy();
      } else {
        res.write(text);
      }
    }
  }

  #remove(res: ServerResponse): void {
    this.#subscribers.delete(res);

    if (this.#subscribers.size === 0) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }
}
