import { randomBytes } from 'node:crypto';

import { LOGIN_TTL_MS, type MappedMessage, type RegisterMessage } from '@porthole/shared';

import type { AgentRecord } from './agent-record.js';
import type { PortBook } from './port-book.js';
import { NO_EVENTS, type RelayEvents } from './relay-events.js';

interface Login {
  record: AgentRecord;
  port: number;
  state: string | undefined;
  timer: NodeJS.Timeout;
  /** Names the login on the status page; unrelated to its `state`. */
  id: string;
  path: string;
  since: Date;
  /** The page the agent asked to open, kept to open it again; never shown. */
  url: string | undefined;
  /** Its callback reached the container. */
  arrived: boolean;
}

/** A login as the status page lists it: the provider's host, never its URL or `state`. */
export interface LoginSummary {
  id: string;
  agent: string;
  port: number;
  path: string;
  since: Date;
  site: string | null;
}

/**
 * Logins waiting for their callback: which agent registered which `state`, and the callback
 * ports kept open for them. Two containers can listen on the same fixed port (Codex on 1455);
 * the `state` in the callback is what tells them apart.
 */
export class LoginBook {
  readonly #ports: PortBook;
  readonly #byState = new Map<string, Login>();
  readonly #all = new Set<Login>();
  readonly #events: RelayEvents;

  constructor(ports: PortBook, events: RelayEvents = NO_EVENTS) {
    this.#ports = ports;
    this.#events = events;
  }

  /** Registers a login and opens its callback port; returns the news for the agent. */
  register(record: AgentRecord, message: RegisterMessage): Promise<MappedMessage | null> {
    const { port, state } = message;
    const login: Login = {
      record,
      port,
      state,
      timer: setTimeout(() => this.#expire(login), LOGIN_TTL_MS),
      id: randomBytes(9).toString('base64url'),
      path: message.path,
      since: new Date(),
      url: undefined,
      arrived: false,
    };

    login.timer.unref();
    this.#all.add(login);
    this.#events.changed();

    if (state !== undefined) {
      const older = this.#byState.get(state);

      if (older !== undefined) this.#expire(older);
      this.#byState.set(state, login);
    }

    // A port already carried (say by --map 8888:8000) keeps its container port.
    const containerPort = record.ports.get(port)?.containerPort ?? port;

    return this.#ports.add(record, port, containerPort, 'login');
  }

  /** The agent that registered `state`, if it is still waiting. */
  ownerOf(state: string | undefined): AgentRecord | undefined {
    return state === undefined ? undefined : this.#byState.get(state)?.record;
  }

  /** How many logins `record` has waiting. */
  pending(record: AgentRecord): number {
    return [...this.#all].filter((login) => login.record === record).length;
  }

  /** Keeps the page an agent asked to open with its login, so that it can be opened again. */
  notePage(record: AgentRecord, url: string): void {
    const login = this.#loginOf(record, url);

    if (login === undefined) return;

    login.url = url;
    this.#events.changed();
  }

  /** The callback of the login that registered `state` reached its container. */
  arrived(state: string | undefined): void {
    const login = state === undefined ? undefined : this.#byState.get(state);

    if (login === undefined || login.arrived) return;

    login.arrived = true;
    this.#events.changed();
  }

  /** Logins still waiting for their callback, oldest first. */
  waiting(): LoginSummary[] {
    return [...this.#all]
      .filter((login) => !login.arrived)
      .map((login) => ({
        id: login.id,
        agent: login.record.name,
        port: login.port,
        path: login.path,
        since: login.since,
        site: siteOf(login.url),
      }));
  }

  /** The page of a waiting login, to open it again. */
  pageOf(id: string): { agent: string; url: string } | undefined {
    const login = [...this.#all].find((l) => l.id === id && !l.arrived);

    return login?.url === undefined ? undefined : { agent: login.record.name, url: login.url };
  }

  /** Forgets every login of `record`. */
  drop(record: AgentRecord): void {
    for (const login of [...this.#all]) {
      if (login.record === record) this.#expire(login);
    }
  }

  #expire(login: Login): void {
    if (!this.#all.delete(login)) return;

    clearTimeout(login.timer);

    if (login.state !== undefined && this.#byState.get(login.state) === login) {
      this.#byState.delete(login.state);
    }

    const others = [...this.#all].some((l) => l.record === login.record && l.port === login.port);

    if (!others) this.#ports.remove(login.record, login.port, 'login');
    this.#events.changed();
  }

  // The login whose `state` the page carries; for a page without one, the agent's latest
  // login without a `state` or a page yet (the agent registers a login just before its page).
  #loginOf(record: AgentRecord, url: string): Login | undefined {
    const state = queryOf(url)?.get('state') ?? undefined;

    if (state !== undefined) {
      const login = this.#byState.get(state);

      return login?.record === record ? login : undefined;
    }

    return [...this.#all]
      .reverse()
      .find((l) => l.record === record && l.state === undefined && l.url === undefined);
  }
}

function queryOf(url: string): URLSearchParams | undefined {
  try {
    return new URL(url).searchParams;
  } catch {
    return undefined;
  }
}

// The host of a web page's URL: all that the status page shows of an authorization URL.
function siteOf(url: string | undefined): string | null {
  try {
    const parsed = new URL(url ?? '');

    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.host : null;
  } catch {
    return null;
  }
}
