import { LOGIN_TTL_MS, type MappedMessage, type RegisterMessage } from '@porthole/shared';

import type { AgentRecord } from './agent-record.js';
import type { PortBook } from './port-book.js';

interface Login {
  record: AgentRecord;
  port: number;
  state: string | undefined;
  timer: NodeJS.Timeout;
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

  constructor(ports: PortBook) {
    this.#ports = ports;
  }

  /** Registers a login and opens its callback port; returns the news for the agent. */
  register(record: AgentRecord, message: RegisterMessage): Promise<MappedMessage | null> {
    const { port, state } = message;
    const login: Login = {
      record,
      port,
      state,
      timer: setTimeout(() => this.#expire(login), LOGIN_TTL_MS),
    };

    login.timer.unref();
    this.#all.add(login);

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
  }
}
