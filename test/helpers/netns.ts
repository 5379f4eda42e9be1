import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

import { Program } from './processes.js';

/** Where a kernel hands out ports to bind(0) and connect(), per network namespace. */
const PORT_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/** The ports programs in a test namespace get for port 0: below the host's range. */
const NAMESPACE_PORTS = '10000 32767';

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

  private constructor(name: string, subnet: number, hostLink: string) {
    this.name = name;
    this.#hostLink = hostLink;
    this.hostAddress = `10.213.${subnet}.1`;
    this.address = `10.213.${subnet}.2`;
  }

  static #next = 0;

  /** Creates a namespace linked to the host. Needs root and iproute2. */
  static create(): Namespace {
    Namespace.#next += 1;

    const name = `porthole-${process.pid}-${Namespace.#next}`;

    ip('netns', 'add', name);

    // Test files run in parallel processes. Each link is named after its subnet, so creating it
    // claims the subnet atomically: a second claim fails and picks another.
    for (let attempt = 0; attempt < 64; attempt += 1) {
      const subnet = randomInt(0, 256);
      const hostLink = `ph213s${subnet}h`;

      try {
        ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', `ph213s${subnet}c`);
      } catch {
        continue;
      }

      // A link left behind under another name (a test process killed before it cleaned up)
      // may still hold the subnet: its host address would then answer for ours.
      if (subnetInUse(subnet)) {
        ip('link', 'del', hostLink);
        continue;
      }

      const ns = new Namespace(name, subnet, hostLink);

      try {
        ns.#configure(`ph213s${subnet}c`);
      } catch (err) {
        ns.destroy();
        throw err;
      }

      return ns;
    }

    ip('netns', 'del', name);
    throw new Error('no free 10.213.x.0/30 link subnet for a test namespace');
  }

  #configure(inner: string): void {
    ip('link', 'set', inner, 'netns', this.name);
    // No IPv6 link-local address on the host's end: the kernel would add it a second or two
    // after the link comes up, in the middle of a login, and Chromium aborts what it has in
    // flight (ERR_NETWORK_CHANGED) at each address change on the machine. The link carries IPv4.
    writeFileSync(`/proc/sys/net/ipv6/conf/${this.#hostLink}/disable_ipv6`, '1');
    ip('addr', 'add', `${this.hostAddress}/30`, 'dev', this.#hostLink);
    ip('link', 'set', this.#hostLink, 'up');
    ip('netns', 'exec', this.name, 'ip', 'addr', 'add', `${this.address}/30`, 'dev', inner);
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', inner, 'up');
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', 'lo', 'up');
    // A tool inside that listens on port 0 gets a port the host's own programs never get for
    // theirs (the host hands out 32768 and up): with the same range, a host process of a test
    // running alongside would now and then hold the very port the relay must mirror.
    ip('netns', 'exec', this.name, 'sh', '-c', `echo '${NAMESPACE_PORTS}' > ${PORT_RANGE_FILE}`);
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
    for (const args of [
      ['netns', 'del', this.name],
      ['link', 'del', this.#hostLink],
    ]) {
      try {
        ip(...args);
      } catch {
        // Already gone (deleting the namespace takes the link with it).
      }
    }

    rmSync(this.#etc, { recursive: true, force: true });
  }
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether an address of 10.213.`subnet`.0/30 is already on one of the host's interfaces. */
function subnetInUse(subnet: number): boolean {
  const listed = execFileSync('ip', ['-o', '-4', 'addr', 'show', 'to', `10.213.${subnet}.0/30`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  return listed.trim() !== '';
}
