import { CloseCodes, ErrorCodes } from '@porthole/shared';

import type { AgentConnection, AgentMessage } from './agent-connection.js';
import { AgentRecord } from './agent-record.js';
import type { BrowserOpener } from './browser-opener.js';
import type { Logger } from './logger.js';
import type { LoginBook } from './logins.js';
import { messages } from './messages.js';
import type { PortBook } from './port-book.js';
import type { RelayEvents } from './relay-events.js';

/**
 * Keeps the relay's picture of its agents: who is connected or reconnecting, which ports each
 * has, which logins wait. Each agent's messages are handled in the order they came, so that a
 * login's port is listening before its page opens.
 */
export class AgentHub {
  constructor(
    readonly records: Map<string, AgentRecord>,
    readonly ports: PortBook,
    readonly logins: LoginBook,
    readonly opener: BrowserOpener,
    readonly holdMs: number,
    readonly log: Logger,
    readonly events: RelayEvents,
  ) {}

  ready(connection: AgentConnection): void {
    const record = this.records.get(connection.name) ?? new AgentRecord(connection.name);
    const older = record.connection;
    const returning = record.awaySince !== null;

    this.records.set(record.name, record);
    record.attach(connection);

    if (older !== null && older !== connection) {
      connection.log.info(messages.agentReplaced(connection.name));
      older.close(CloseCodes.REPLACED, ErrorCodes.REPLACED, 'a newer connection replaced this one');
    } else {
      connection.log.info(
        { address: connection.address },
        returning
          ? messages.agentReturned(connection.name)
          : messages.agentConnected(connection.name),
      );
    }
    this.events.changed();
  }

  message(connection: AgentConnection, message: AgentMessage): void {
    const record = this.records.get(connection.name);

    if (record?.connection !== connection) return;

    record.queue = record.queue
      .then(() => this.#handle(record, connection, message))
      .catch((err: unknown) => {
        connection.log.error(
          { err: { message: String(err) } },
          messages.internalError(connection.name),
        );
      });
  }

  async #handle(
    record: AgentRecord,
    connection: AgentConnection,
    message: AgentMessage,
  ): Promise<void> {
    switch (message.type) {
      case 'map': {
        const wanted = new Map(message.mappings.map((m) => [m.hostPort, m.containerPort] as const));

        for (const news of await this.ports.replace(record, 'map', wanted)) connection.send(news);
        break;
      }
      case 'ports': {
        const wanted = new Map(
          message.ports.map((p) => [p, record.ports.get(p)?.containerPort ?? p] as const),
        );

        for (const news of await this.ports.replace(record, 'listening', wanted))
          connection.send(news);
        break;
      }
      case 'register': {
        const news = await this.logins.register(record, message);

        if (news !== null) connection.send(news);
        break;
      }
      case 'open':
        this.logins.notePage(record, message.url);
        await this.opener.open(record.name, message.url);
        break;
    }
    this.events.changed();
  }

  // A lost agent keeps its ports and logins for the hold time: a callback that arrives while
  // it reconnects waits for it instead of failing.
  closed(connection: AgentConnection): void {
    const record = this.records.get(connection.name);

    if (record?.connection !== connection) return;

    record.detach();
    connection.log.info(messages.agentDisconnected(connection.name, this.holdMs));
    record.expiry = setTimeout(() => this.#forget(record), this.holdMs);
    record.expiry.unref();
    this.events.changed();
  }

  #forget(record: AgentRecord): void {
    if (record.connection !== null || this.records.get(record.name) !== record) return;

    this.records.delete(record.name);
    this.logins.drop(record);
    this.ports.releaseAll(record);
    record.release();
    this.log.info({ agent: record.name }, messages.agentGone(record.name));
    this.events.changed();
  }

  closeAll(): void {
    for (const record of this.records.values()) {
      record.connection?.close(CloseCodes.RELAY_SHUTDOWN, ErrorCodes.RELAY_SHUTDOWN);
      record.release();
    }
  }
}

/** Each agent, its connection and its ports, as `GET /api/agents` lists them. */
export function listAgents(records: Iterable<AgentRecord>, logins: LoginBook): unknown[] {
  return [...records].map((record) => ({
    name: record.name,
    status: record.connected ? 'connected' : 'reconnecting',
    address: record.connection?.address ?? null,
    connectedAt: record.connection?.connectedAt.toISOString() ?? null,
    awaySince: record.awaySince?.toISOString() ?? null,
    streams: record.connection?.streamCount ?? 0,
    pendingLogins: logins.pending(record),
    ports: [...record.ports.values()].map(({ sources, ...entry }) => ({
      ...entry,
      source: [...sources].at(-1),
      sources: [...sources],
    })),
  }));
}
