import type { MirrorStatus, PortSource } from '@porthole/shared';

import type { AgentConnection } from './agent-connection.js';

/** A host port carried into one agent, with why and how well. */
export interface PortEntry {
  hostPort: number;
  containerPort: number;
  status: MirrorStatus;
  addresses: string[];
  detail?: string;
  sources: Set<PortSource>;
}

/**
 * An agent as the relay knows it by name, across reconnects: its current connection (none
 * while it is reconnecting), and the ports carried into it. A record outlives its connection
 * by the hold time, so that a callback arriving during a reconnect can wait for it.
 */
export class AgentRecord {
  readonly name: string;
  readonly ports = new Map<number, PortEntry>();
  connection: AgentConnection | null = null;
  awaySince: Date | null = null;
  expiry: NodeJS.Timeout | undefined;
  /** Work on this agent's ports, in the order its messages came (register before open). */
  queue: Promise<unknown> = Promise.resolve();
  #waiters = new Set<(connection: AgentConnection | null) => void>();

  constructor(name: string) {
    this.name = name;
  }

  get connected(): boolean {
    return this.connection !== null && this.connection.ready;
  }

  /** Resolves with the live connection, waiting up to `timeoutMs` for one; null if none came. */
  whenConnected(timeoutMs: number): Promise<AgentConnection | null> {
    if (this.connected) return Promise.resolve(this.connection);

    return new Promise((resolve) => {
      const done = (connection: AgentConnection | null) => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(connection);
      };
      const timer = setTimeout(() => done(null), timeoutMs);

      this.#waiters.add(done);
    });
  }

  attach(connection: AgentConnection): void {
    clearTimeout(this.expiry);
    this.connection = connection;
    this.awaySince = null;

    for (const waiter of [...this.#waiters]) waiter(connection);
  }

  detach(): void {
    this.connection = null;
    this.awaySince = new Date();
  }

  /** Ends every wait: the record is going away. */
  release(): void {
    clearTimeout(this.expiry);

    for (const waiter of [...this.#waiters]) waiter(null);
  }
}
