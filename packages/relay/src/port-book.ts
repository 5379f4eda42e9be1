import type { MappedMessage, PortSource } from '@porthole/shared';

import type { AgentRecord, PortEntry } from './agent-record.js';
import type { Logger } from './logger.js';
import { messages } from './messages.js';
import type { ClaimResult, MirrorSet } from './mirrors.js';
import { NO_EVENTS, type RelayEvents } from './relay-events.js';

// An agent on the relay's own loopback would dial the mirror itself, which would carry the
// connection back to the agent, which would dial the mirror again: a loop that opens
// connections until the machine runs out. Its ports are reachable as they are anyway.
function sameNetwork(): ClaimResult {
  return {
    status: 'failed',
    addresses: [],
    detail: "the agent shares the relay's network, where this port is reachable as it is",
  };
}

/**
 * Keeps each agent's ports and the mirrors in step. A port may be wanted for several reasons
 * at once (mapped, seen listening, named by a login); it is mirrored while any reason holds.
 */
export class PortBook {
  readonly #mirrors: MirrorSet<AgentRecord>;
  readonly #log: Logger;
  readonly #events: RelayEvents;

  constructor(mirrors: MirrorSet<AgentRecord>, log: Logger, events: RelayEvents = NO_EVENTS) {
    this.#mirrors = mirrors;
    this.#log = log;
    this.#events = events;
  }

  /** Adds a reason to carry `hostPort`; returns the news for the agent, if any. */
  async add(
    record: AgentRecord,
    hostPort: number,
    containerPort: number,
    source: PortSource,
  ): Promise<MappedMessage | null> {
    const entry = record.ports.get(hostPort);

    if (
      entry !== undefined &&
      entry.containerPort === containerPort &&
      entry.status === 'mirrored'
    ) {
      entry.sources.add(source);
      this.#events.changed();
      return null;
    }

    const result =
      record.connection?.sameNetwork === true && hostPort === containerPort
        ? sameNetwork()
        : await this.#mirrors.claim(record, hostPort, containerPort);
    const next: PortEntry = {
      hostPort,
      containerPort,
      ...result,
      sources: new Set([...(entry?.sources ?? []), source]),
    };

    record.ports.set(hostPort, next);
    this.#events.changed();

    // A port that stays busy is retried on each announcement, but reported and counted once.
    if (
      entry !== undefined &&
      entry.status === next.status &&
      entry.containerPort === containerPort
    ) {
      return null;
    }

    if (next.status !== 'mirrored') this.#events.bindFailed();
    this.#report(record.name, next, source);

    return { type: 'mapped', hostPort, containerPort, source, ...result };
  }

  /** Drops a reason; the port stops being carried when none is left. */
  remove(record: AgentRecord, hostPort: number, source: PortSource): void {
    const entry = record.ports.get(hostPort);

    if (entry === undefined || !entry.sources.delete(source) || entry.sources.size > 0) return;

    record.ports.delete(hostPort);
    this.#events.changed();

    if (this.#mirrors.unclaim(record, hostPort)) {
      this.#log.info({ port: hostPort }, messages.mirrorClosed(hostPort));
    }
  }

  /** Makes `ports` the whole set carried for `source`. */
  async replace(
    record: AgentRecord,
    source: PortSource,
    ports: Map<number, number>,
  ): Promise<MappedMessage[]> {
    for (const entry of [...record.ports.values()]) {
      if (entry.sources.has(source) && ports.get(entry.hostPort) !== entry.containerPort) {
        this.remove(record, entry.hostPort, source);
      }
    }

    const news = await Promise.all(
      [...ports].map(([host, container]) => this.add(record, host, container, source)),
    );

    return news.filter((m): m is MappedMessage => m !== null);
  }

  /** Stops carrying anything into `record`. */
  releaseAll(record: AgentRecord): void {
    for (const entry of [...record.ports.values()]) {
      for (const source of [...entry.sources]) this.remove(record, entry.hostPort, source);
    }
  }

  #report(name: string, entry: PortEntry, source: PortSource): void {
    const { hostPort, containerPort, addresses, status } = entry;
    const fields = { hostPort, containerPort, source };

    if (status === 'mirrored') {
      this.#log.info(fields, messages.mirrorOpened(name, containerPort, addresses, source));
    } else if (status === 'busy') {
      this.#log.warn(fields, messages.mirrorBusy(name, hostPort, containerPort));
    } else {
      this.#log.warn(fields, messages.mirrorFailed(name, hostPort));
    }
  }
}
