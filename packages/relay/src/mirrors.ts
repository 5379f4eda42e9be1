import { createServer, type Server, type Socket } from 'node:net';

import { LISTEN_BACKLOG, type MirrorStatus } from '@porthole/shared';

import { mirrorAddresses } from './messages.js';

/** An owner's claim on a host port: connections to it go to `containerPort` in that owner. */
export interface MirrorClaim<A> {
  owner: A;
  containerPort: number;
}

/** How a claim fared. */
export interface ClaimResult {
  status: MirrorStatus;
  addresses: string[];
  detail?: string;
}

interface Mirror<A> {
  hostPort: number;
  servers: Server[];
  addresses: string[];
  /** Oldest first: the last claim is the most recent announcement. */
  claims: MirrorClaim<A>[];
}

const SHUTTING_DOWN: ClaimResult = {
  status: 'failed',
  addresses: [],
  detail: 'the relay is shutting down',
};

type BindResult = { servers: Server[]; addresses: string[] } | { busy: boolean; detail: string };

/**
 * The host-side listeners of container ports. Each host port is bound on every mirror
 * address (loopback only) and may be claimed by several owners (agents). A port that the
 * relay serves itself is claimed without binding: its one path for callbacks,
 * /oauth/callback, is routed by the relay's own server.
 */
export class MirrorSet<A> {
  readonly #hosts: readonly string[];
  #ownPort = -1;
  #ownAddresses: string[] = [];
  readonly #onConnection: (socket: Socket, hostPort: number) => void;
  readonly #mirrors = new Map<number, Mirror<A>>();
  readonly #binding = new Map<number, Promise<BindResult>>();
  /** After closeAll: a stopping relay takes no new ports, whoever announces them. */
  #closed = false;

  constructor(hosts: readonly string[], onConnection: (socket: Socket, hostPort: number) => void) {
    this.#hosts = hosts;
    this.#onConnection = onConnection;
  }

  /** Names the relay's own port, which is claimed but never bound, and how users reach it. */
  setOwnPort(port: number, addresses: string[]): void {
    this.#ownPort = port;
    this.#ownAddresses = addresses;
  }

  /** Claims `hostPort` for `owner` (as its most recent claim), binding it first if needed. */
  async claim(owner: A, hostPort: number, containerPort: number): Promise<ClaimResult> {
    if (this.#closed) return SHUTTING_DOWN;

    let mirror = this.#mirrors.get(hostPort);

    if (mirror === undefined) {
      const bound =
        hostPort === this.#ownPort
          ? { servers: [], addresses: this.#ownAddresses }
          : await this.#bind(hostPort);

      if ('busy' in bound) {
        return { status: bound.busy ? 'busy' : 'failed', addresses: [], detail: bound.detail };
      }

      // The relay began to stop while this port was being bound.
      if (this.#closed) {
        for (const server of bound.servers) server.close();
        return SHUTTING_DOWN;
      }

      mirror = this.#mirrors.get(hostPort) ?? this.#adopt(hostPort, bound);
    }

    mirror.claims = mirror.claims.filter((c) => c.owner !== owner);
    mirror.claims.push({ owner, containerPort });

    return { status: 'mirrored', addresses: mirror.addresses };
  }

  /** Drops `owner`'s claim on `hostPort`; a port nobody claims stops listening. */
  unclaim(owner: A, hostPort: number): boolean {
    const mirror = this.#mirrors.get(hostPort);

    if (mirror === undefined) return false;

    mirror.claims = mirror.claims.filter((c) => c.owner !== owner);

    if (mirror.claims.length > 0) return false;

    this.#close(mirror);

    return true;
  }

  /** The claims on `hostPort`, oldest first. */
  claims(hostPort: number): readonly MirrorClaim<A>[] {
    return this.#mirrors.get(hostPort)?.claims ?? [];
  }

  /** Stops every mirror; connections in flight finish on their own. */
  closeAll(): void {
    this.#closed = true;

    for (const mirror of [...this.#mirrors.values()]) this.#close(mirror);
  }

  #close(mirror: Mirror<A>): void {
    this.#mirrors.delete(mirror.hostPort);
    // close() stops accepting and lets connections already carried finish.
    for (const server of mirror.servers) server.close();
  }

  #adopt(hostPort: number, bound: { servers: Server[]; addresses: string[] }): Mirror<A> {
    const mirror: Mirror<A> = {
      hostPort,
      servers: bound.servers,
      addresses: bound.addresses,
      claims: [],
    };

    for (const server of bound.servers) {
      server.on('connection', (socket) => this.#onConnection(socket, hostPort));
    }

    this.#mirrors.set(hostPort, mirror);

    return mirror;
  }

  #bind(port: number): Promise<BindResult> {
    let pending = this.#binding.get(port);

    if (pending === undefined) {
      pending = bindAll(this.#hosts, port).finally(() => this.#binding.delete(port));
      this.#binding.set(port, pending);
    }

    return pending;
  }
}

// Binds the port on every mirror address. A host without IPv6 simply has no [::1] mirror; a
// port already taken on any address is "busy", since a browser might reach the other program.
async function bindAll(hosts: readonly string[], port: number): Promise<BindResult> {
  const results = await Promise.all(hosts.map((host) => listenOn(host, port)));
  const servers = results.filter((r): r is Server => !(r instanceof Error));
  const errors = results.filter((r): r is NodeJS.ErrnoException => r instanceof Error);
  const busy = errors.some((e) => e.code === 'EADDRINUSE' || e.code === 'EACCES');

  if (busy || servers.length === 0) {
    for (const server of servers) server.close();

    const first = errors.find((e) => e.code === 'EADDRINUSE') ?? errors[0];

    return { busy, detail: first?.code ?? 'no address to listen on' };
  }

  const bound = hosts.filter((_, i) => !(results[i] instanceof Error));

  return { servers, addresses: mirrorAddresses(bound, port) };
}

function listenOn(host: string, port: number): Promise<Server | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const server = createServer({ allowHalfOpen: true, noDelay: true });

    server.once('error', (err) => resolve(err));
    server.listen({ host, port, exclusive: true, backlog: LISTEN_BACKLOG }, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      resolve(server);
    });
  });
}
