import { createServer, type Server, type Socket } from 'node:net';

import type { MappedMessage, PortMapping } from '@porthole/shared';

import { mirrorAddresses } from './messages.js';

/** An agent's claim on a host port: connections to it go to `containerPort` in that agent. */
export interface MirrorClaim<A> {
  agent: A;
  containerPort: number;
}

interface Mirror<A> {
  hostPort: number;
  servers: Server[];
  addresses: string[];
  claims: MirrorClaim<A>[];
}

type BindResult = { servers: Server[]; addresses: string[] } | { busy: boolean; detail: string };

/**
 * The host-side listeners of mapped ports. Each host port is bound on every mirror address
 * (loopback only) and may be claimed by several agents; the most recent claim wins.
 */
export class MirrorSet<A> {
  readonly #hosts: readonly string[];
  readonly #onConnection: (socket: Socket, claim: MirrorClaim<A> | undefined, port: number) => void;
  readonly #mirrors = new Map<number, Mirror<A>>();
  readonly #binding = new Map<number, Promise<BindResult>>();

  constructor(
    hosts: readonly string[],
    onConnection: (socket: Socket, claim: MirrorClaim<A> | undefined, port: number) => void,
  ) {
    this.#hosts = hosts;
    this.#onConnection = onConnection;
  }

  /** Claims `mapping.hostPort` for `agent`, binding it first if nobody has. */
  async claim(agent: A, mapping: PortMapping): Promise<MappedMessage> {
    const { hostPort, containerPort } = mapping;
    const reply = (fields: Pick<MappedMessage, 'status' | 'addresses'> & { detail?: string }) => ({
      type: 'mapped' as const,
      hostPort,
      containerPort,
      ...fields,
    });
    let mirror = this.#mirrors.get(hostPort);

    if (mirror === undefined) {
      const bound = await this.#bind(hostPort);

      if ('busy' in bound) {
        return reply({
          status: bound.busy ? 'busy' : 'failed',
          addresses: [],
          detail: bound.detail,
        });
      }

      mirror = this.#mirrors.get(hostPort) ?? this.#adopt(hostPort, bound);
    }

    mirror.claims = mirror.claims.filter((c) => c.agent !== agent);
    mirror.claims.push({ agent, containerPort });

    return reply({ status: 'mirrored', addresses: mirror.addresses });
  }

  /** Drops every claim of `agent`; a port nobody claims stops listening. */
  release(agent: A): number[] {
    const closed: number[] = [];

    for (const mirror of this.#mirrors.values()) {
      mirror.claims = mirror.claims.filter((c) => c.agent !== agent);

      if (mirror.claims.length === 0) {
        this.#close(mirror);
        closed.push(mirror.hostPort);
      }
    }

    return closed;
  }

  /** Stops every mirror; connections in flight finish on their own. */
  closeAll(): void {
    for (const mirror of [...this.#mirrors.values()]) this.#close(mirror);
  }

  #close(mirror: Mirror<A>): void {
    this.#mirrors.delete(mirror.hostPort);
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
      server.on('connection', (socket) => {
        this.#onConnection(socket, mirror.claims.at(-1), hostPort);
      });
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
    server.listen({ host, port, exclusive: true }, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      resolve(server);
    });
  });
}
