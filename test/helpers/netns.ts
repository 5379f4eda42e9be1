import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

import { Program } from './processes.js';

/**
 * A network namespace standing in for a container: its own loopback, and a veth pair to the
 * host like a container's bridge link. Nothing listening inside is reachable from the host.
 */
export class Namespace {
  readonly name: string;
  /** The host's end of the link: where the container reaches the relay. */
  readonly hostAddress: string;
  /** The container's end of the link. */
  readonly address: string;
  readonly #hostLink: string;

  private constructor(id: number, subnet: number) {
    this.name = `porthole-${process.pid}-${id}`;
    this.#hostLink = `ph${process.pid % 100000}h${id}`;
    this.hostAddress = `10.213.${subnet}.1`;
    this.address = `10.213.${subnet}.2`;
  }

  static #next = 0;

  /** Creates a namespace linked to the host. Needs root and iproute2. */
  static create(): Namespace {
    Namespace.#next += 1;

    const ns = new Namespace(Namespace.#next, randomInt(0, 256));
    const inner = `${ns.#hostLink.slice(0, -2)}c${Namespace.#next}`;

    ip('netns', 'add', ns.name);

    try {
      ip('link', 'add', ns.#hostLink, 'type', 'veth', 'peer', 'name', inner);
      ip('link', 'set', inner, 'netns', ns.name);
      ip('addr', 'add', `${ns.hostAddress}/30`, 'dev', ns.#hostLink);
      ip('link', 'set', ns.#hostLink, 'up');
      ip('netns', 'exec', ns.name, 'ip', 'addr', 'add', `${ns.address}/30`, 'dev', inner);
      ip('netns', 'exec', ns.name, 'ip', 'link', 'set', inner, 'up');
      ip('netns', 'exec', ns.name, 'ip', 'link', 'set', 'lo', 'up');
    } catch (err) {
      ns.destroy();
      throw err;
    }

    return ns;
  }

  /** Cuts or restores the link to the host, like a network outage. */
  setLink(up: boolean): void {
    ip('link', 'set', this.#hostLink, up ? 'up' : 'down');
  }

  /**
   * Gives programs in the namespace host names of their own, as Docker's `extra_hosts` does:
   * `ip netns exec` mounts /etc/netns/NAME/hosts over /etc/hosts for them.
   */
  setHosts(names: Record<string, string>): void {
    const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback'];

    for (const [name, address] of Object.entries(names)) lines.push(`${address} ${name}`);

    mkdirSync(this.#etc, { recursive: true });
    writeFileSync(`${this.#etc}/hosts`, `${lines.join('\n')}\n`);
  }

  get #etc(): string {
    return `/etc/netns/${this.name}`;
  }

  /** Runs a program inside the namespace. */
  spawn(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Program {
    return new Program('ip', ['netns', 'exec', this.name, command, ...args], env);
  }

  destroy(): void {
    try {
      ip('netns', 'del', this.name);
    } catch {
      // Already gone.
    }

    rmSync(this.#etc, { recursive: true, force: true });
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
