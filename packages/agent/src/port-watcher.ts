import { readdir, readFile, readlink } from 'node:fs/promises';

import { PORT_WATCH_INTERVAL_MS } from '@porthole/shared';

const LISTEN = '0A';

// Addresses in /proc/net/tcp{,6} are hex words in host byte order (little-endian here).
const IPV4_WILDCARD = '00000000';
const IPV6_WILDCARD = '0'.repeat(32);
const IPV6_LOOPBACK = '00000000000000000000000001000000';
const IPV4_MAPPED_PREFIX = '0000000000000000FFFF0000';

/** A listening TCP socket as the kernel lists it. */
export interface Listener {
  port: number;
  inode: string;
}

function reachableFromLoopback(hex: string): boolean {
  if (hex.length === 8) {
    return hex === IPV4_WILDCARD || hex.endsWith('7F');
  }

  if (hex === IPV6_WILDCARD || hex === IPV6_LOOPBACK) return true;

  return hex.startsWith(IPV4_MAPPED_PREFIX) && hex.endsWith('7F');
}

/**
 * Lists the sockets in LISTEN state on a loopback or wildcard address from the text of
 * /proc/net/tcp or /proc/net/tcp6. A listener on another address (the container's eth0
 * only) cannot be reached by dialling loopback, so it is left out.
 */
export function parseListeners(table: string): Listener[] {
  const found: Listener[] = [];

  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];

    if (local === undefined || fields[3] !== LISTEN) continue;

    const [address = '', portHex = ''] = local.split(':');

    if (reachableFromLoopback(address.toUpperCase())) {
      found.push({ port: parseInt(portHex, 16), inode: fields[9] ?? '' });
    }
  }

  return found;
}

/** Reads `1024-65535` or `3000,8000-9000` into a port filter. */
export function parsePortRanges(text: string): (port: number) => boolean {
  const ranges = text.split(',').map((part) => {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    const low = Number(match?.[1]);
    const high = Number(match?.[2] ?? match?.[1]);

    if (match === null || low < 1 || high > 65535 || low > high) {
      throw new RangeError(
        `--ports "${text}" must be ports or ranges like 1024-65535 or 3000,8000-9000`,
      );
    }

    return [low, high] as const;
  });

  return (port) => ranges.some(([low, high]) => port >= low && port <= high);
}

async function readTable(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    // No IPv6 in this kernel or container: nothing listens there.
    return '';
  }
}

// Socket inodes of this process, so that its own listeners are never announced.
async function ownSocketInodes(): Promise<Set<string>> {
  const inodes = new Set<string>();
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);

  await Promise.all(
    fds.map(async (fd) => {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(target);

      if (match?.[1] !== undefined) inodes.add(match[1]);
    }),
  );

  return inodes;
}

/**
 * Watches the container's listening ports by reading the kernel's socket tables every
 * PORT_WATCH_INTERVAL_MS, and reports the whole set whenever it changes. A tool that only
 * prints its login URL never tells anyone its port; this is how the relay learns it fast
 * enough (a watcher polling every few seconds makes the first login attempt fail).
 */
export class PortWatcher {
  readonly #allowed: (port: number) => boolean;
  readonly #onChange: (ports: number[]) => void;
  readonly #intervalMs: number;
  #ports = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #scanning: Promise<void> | undefined;

  constructor(
    allowed: (port: number) => boolean,
    onChange: (ports: number[]) => void,
    intervalMs = PORT_WATCH_INTERVAL_MS,
  ) {
    this.#allowed = allowed;
    this.#onChange = onChange;
    this.#intervalMs = intervalMs;
  }

  /** The listening ports seen last. */
  get ports(): number[] {
    return [...this.#ports].sort((a, b) => a - b);
  }

  /** Starts watching; resolves once the first scan is done, so the first report is whole. */
  async start(): Promise<void> {
    await this.refresh();
    this.#schedule();
  }

  /** Scans now (joining a scan in progress) and returns the listening ports. */
  async refresh(): Promise<number[]> {
    this.#scanning ??= this.#scan().finally(() => {
      this.#scanning = undefined;
    });
    await this.#scanning;

    return this.ports;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;

    this.#timer = setTimeout(() => {
      this.refresh().then(
        () => this.#schedule(),
        () => this.#schedule(),
      );
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #scan(): Promise<void> {
    const tables = await Promise.all([readTable('/proc/net/tcp'), readTable('/proc/net/tcp6')]);
    const listeners = tables.flatMap(parseListeners).filter((l) => this.#allowed(l.port));
    const fresh = listeners.filter((l) => !this.#ports.has(l.port));
    const own = fresh.length > 0 ? await ownSocketInodes() : new Set<string>();
    const ports = new Set(
      listeners.filter((l) => this.#ports.has(l.port) || !own.has(l.inode)).map((l) => l.port),
    );

    if (ports.size === this.#ports.size && [...ports].every((p) => this.#ports.has(p))) {
      return;
    }

    this.#ports = ports;
    this.#onChange(this.ports);
  }
}
