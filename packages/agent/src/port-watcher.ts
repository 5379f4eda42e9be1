import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';

import { PORT_WATCH_FULL_SCAN_MS, PORT_WATCH_INTERVAL_MS } from '@porthole/shared';

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

// Fields of /proc/net/snmp's Tcp line that move when a socket of this network namespace opens,
// connects or closes. The segment counters are left out: they move with every byte carried.
const TCP_COUNTERS = ['ActiveOpens', 'PassiveOpens', 'AttemptFails', 'EstabResets', 'CurrEstab'];

function field(text: string, line: RegExp): string {
  return line.exec(text)?.[1] ?? '-';
}

/** The namespace's TCP counters, as far as they tell whether a socket opened or closed. */
export interface SocketCounters {
  /** Equal from one read to the next while no TCP socket opens or closes. */
  key: string;
  /** TCP sockets in use over IPv4 and IPv6: a table with none need not be read. */
  inUse: number;
  inUse6: number;
}

/**
 * Reads the texts of /proc/net/sockstat, /proc/net/sockstat6 and /proc/net/snmp: sockets in use
 * (a new listener is one more), sockets in TIME_WAIT, and the opens, failures and established
 * count. `undefined` when they cannot be read, so that every check reads the tables.
 */
export function socketCounters(
  sockstat: string,
  sockstat6: string,
  snmp: string,
): SocketCounters | undefined {
  const inUse = field(sockstat, /^TCP: inuse (\d+)/m);

  if (inUse === '-') return undefined;

  const inUse6 = field(sockstat6, /^TCP6: inuse (\d+)/m);
  const [names, values] = snmp.split('\n').filter((line) => line.startsWith('Tcp:'));
  const header = names?.split(/\s+/) ?? [];
  const counts = values?.split(/\s+/) ?? [];
  const tcp = TCP_COUNTERS.map((name) => counts[header.indexOf(name)] ?? '-');

  return {
    key: [inUse, field(sockstat, /^TCP: .*\btw (\d+)/m), inUse6, ...tcp].join(' '),
    inUse: Number(inUse),
    // Without IPv6 counters, the IPv6 table is read (and found missing) as before.
    inUse6: inUse6 === '-' ? NaN : Number(inUse6),
  };
}

// The counter files are small and the kernel writes them out from memory in microseconds: they
// are read synchronously, into one buffer, as a round trip through libuv's thread pool for each
// open, read and close would cost many times more. Left unfilled: an agent that never watches
// (or `porthole-agent open`, which loads this module too) never touches its pages.
const counterBuffer = Buffer.allocUnsafeSlow(16 * 1024);

function readSmall(path: string): string {
  let fd: number | undefined;

  try {
    fd = openSync(path, 'r');

    return counterBuffer.toString(
      'latin1',
      0,
      readSync(fd, counterBuffer, 0, counterBuffer.length, 0),
    );
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function readCounters(): SocketCounters | undefined {
  return socketCounters(
    readSmall('/proc/net/sockstat'),
    readSmall('/proc/net/sockstat6'),
    readSmall('/proc/net/snmp'),
  );
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

export interface PortWatcherTiming {
  /** How often the socket counters are checked. */
  intervalMs?: number;
  /** How often the socket tables are read whatever the counters say. */
  fullScanMs?: number;
}

/**
 * Watches the container's listening ports and reports the whole set whenever it changes. A
 * tool that only prints its login URL never tells anyone its port; this is how the relay
 * learns it fast enough (a watcher polling every few seconds makes the first login attempt
 * fail).
 *
 * Every PORT_WATCH_INTERVAL_MS it reads the namespace's TCP counters, a few microseconds of
 * kernel work, and reads the socket tables only when they moved, or once every
 * PORT_WATCH_FULL_SCAN_MS. The tables themselves are costly: the kernel walks its whole
 * connection hash, shared by every namespace on the machine, for each read (about 5 ms per
 * table on a host with 24 GiB), which polled ten times a second kept a tenth of a core busy.
 */
export class PortWatcher {
  readonly #allowed: (port: number) => boolean;
  readonly #onChange: (ports: number[]) => void;
  readonly #intervalMs: number;
  readonly #fullScanMs: number;
  #ports = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #scanning: Promise<void> | undefined;
  #counters: string | undefined;
  #lastScanAt = 0;
  #scans = 0;

  constructor(
    allowed: (port: number) => boolean,
    onChange: (ports: number[]) => void,
    timing: PortWatcherTiming = {},
  ) {
    this.#allowed = allowed;
    this.#onChange = onChange;
    this.#intervalMs = timing.intervalMs ?? PORT_WATCH_INTERVAL_MS;
    this.#fullScanMs = timing.fullScanMs ?? PORT_WATCH_FULL_SCAN_MS;
  }

  /** The listening ports seen last. */
  get ports(): number[] {
    return [...this.#ports].sort((a, b) => a - b);
  }

  /** How many times the socket tables have been read. */
  get scans(): number {
    return this.#scans;
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
      this.#check().then(
        () => this.#schedule(),
        () => this.#schedule(),
      );
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    // A scan that began before the counters are read may have missed what they count.
    await this.#scanning;

    const counters = readCounters();
    const due = performance.now() - this.#lastScanAt >= this.#fullScanMs;

    if (counters !== undefined && counters.key === this.#counters && !due) return;

    await this.refresh();
  }

  async #scan(): Promise<void> {
    // Read before the tables, so that whatever opens after them moves the counters on.
    const counters = readCounters();

    this.#counters = counters?.key;
    this.#lastScanAt = performance.now();
    this.#scans += 1;

    const tables = await Promise.all([
      counters?.inUse === 0 ? '' : readTable('/proc/net/tcp'),
      counters?.inUse6 === 0 ? '' : readTable('/proc/net/tcp6'),
    ]);
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
