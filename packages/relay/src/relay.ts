import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import {
  type AgentTokenClaims,
  bridge,
  CloseCodes,
  ErrorCodes,
  PROTOCOL_VERSION,
  ResetReason,
  StreamResetError,
} from '@porthole/shared';
import Fastify, { LogController } from 'fastify';
import type { WebSocket } from 'ws';

import { AgentConnection } from './agent-connection.js';
import { AgentEndpoint } from './agent-endpoint.js';
import { loadOrCreateRelayKey, type RelayKey } from './key-file.js';
import { hostPort } from './listen-addresses.js';
import type { Logger } from './logger.js';
import { messages } from './messages.js';
import { type MirrorClaim, MirrorSet } from './mirrors.js';
import { errorResponse } from './pages.js';
import { RELAY_SOFTWARE } from './version.js';

export interface RelayOptions {
  /** Addresses the relay's own port listens on (agents, API, health). */
  hosts: string[];
  port: number;
  keyFile: string;
  /** Addresses that mirrored ports bind (loopback). */
  mirrorHosts: string[];
  tls?: { cert: Buffer; key: Buffer };
  logger: Logger;
}

/** A running relay. */
export interface Relay {
  /** The port the relay's own servers listen on (useful with port 0). */
  readonly port: number;
  /** `http(s)://host:port` for each listen address. */
  readonly urls: string[];
  readonly key: RelayKey;
  close(): Promise<void>;
}

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Starts a relay: loads or creates its key, then listens on every host. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { logger } = options;
  const key = await loadOrCreateRelayKey(options.keyFile);

  if (key.created) {
    logger.info({ file: key.file }, messages.keyCreated(key.file));
  }

  const agents = new Map<string, AgentConnection>();
  const mirrors = new MirrorSet<AgentConnection>(options.mirrorHosts, (socket, claim, port) =>
    carry(socket, claim, port, logger),
  );
  const accept = (ws: WebSocket, socket: Duplex, claims: AgentTokenClaims, address: string) => {
    new AgentConnection(ws, socket, claims, address, {
      privateKey: key.privateKey,
      software: RELAY_SOFTWARE,
      logger,
      onReady: (connection) => {
        const older = agents.get(connection.name);

        agents.set(connection.name, connection);

        if (older !== undefined) {
          connection.log.info(messages.agentReplaced(connection.name));
          older.close(
            CloseCodes.REPLACED,
            ErrorCodes.REPLACED,
            'a newer connection replaced this one',
          );
        } else {
          connection.log.info({ address }, messages.agentConnected(connection.name));
        }
      },
      onMap: (connection, message) => {
        for (const mapping of message.mappings) {
          void mirrors.claim(connection, mapping).then((result) => {
            if (!connection.ready) {
              mirrors.release(connection);
              return;
            }

            const { type: _type, ...state } = result;

            connection.ports.set(mapping.hostPort, state);
            connection.send(result);
            logMapped(connection, result);
          });
        }
      },
      onClose: (connection) => {
        for (const port of mirrors.release(connection)) {
          logger.info({ port }, messages.mirrorClosed(port));
        }

        if (agents.get(connection.name) === connection) {
          agents.delete(connection.name);
          connection.log.info(messages.agentDisconnected(connection.name));
        }
      },
    });
  };
  const endpoint = new AgentEndpoint(key.publicKey, logger, accept);
  const api = buildApi(logger, agents);
  const servers = await listenAll(api, options, endpoint);
  const port = (servers[0]?.address() as { port: number }).port;
  const scheme = options.tls === undefined ? 'http' : 'https';
  const urls = options.hosts.map((host) => `${scheme}://${hostPort(host, port)}`);

  for (const url of urls) logger.info({ listen: url }, messages.listening(url));

  return {
    port,
    urls,
    key,
    async close() {
      logger.info(messages.shuttingDown());
      mirrors.closeAll();

      for (const agent of agents.values()) {
        agent.close(CloseCodes.RELAY_SHUTDOWN, 'PORTHOLE_RELAY_SHUTDOWN');
      }

      endpoint.close();
      await Promise.all(servers.map((server) => closeServer(server)));
      await api.app.close();
    },
  };
}

function logMapped(
  connection: AgentConnection,
  result: { status: string; hostPort: number; containerPort: number; addresses: string[] },
): void {
  const { status, hostPort: port, containerPort, addresses } = result;

  if (status === 'mirrored') {
    connection.log.info(
      { hostPort: port, containerPort },
      messages.mirrorOpened(connection.name, containerPort, addresses),
    );
  } else if (status === 'busy') {
    connection.log.warn(
      { hostPort: port, containerPort },
      messages.mirrorBusy(connection.name, port, containerPort),
    );
  } else {
    connection.log.warn(
      { hostPort: port, containerPort },
      messages.mirrorFailed(connection.name, port),
    );
  }
}

// Carries one browser connection on a mirrored port into the container that claimed it.
function carry(
  socket: Socket,
  claim: MirrorClaim<AgentConnection> | undefined,
  port: number,
  logger: Logger,
): void {
  socket.on('error', () => undefined);

  const stream = claim?.agent.openStream(claim.containerPort) ?? null;

  if (claim === undefined || stream === null) {
    logger.warn({ port }, messages.noAgentForPort(port));
    socket.end(
      errorResponse(
        503,
        'No container is connected',
        `Nothing carries port ${port} into a container right now. Check that the container's agent is running.`,
      ),
    );
    return;
  }

  const { agent, containerPort } = claim;

  bridge(socket, stream, (err) => {
    const refused = err instanceof StreamResetError && err.reason === ResetReason.REFUSED;

    if (refused && stream.bytesReceived === 0 && socket.writable) {
      agent.log.warn({ port: containerPort }, messages.streamRefused(agent.name, containerPort));
      socket.end(
        errorResponse(
          502,
          'Nothing is listening in the container',
          messages.streamRefused(agent.name, containerPort) + '.',
        ),
      );
    } else {
      socket.destroy();
    }
  });
}

interface Api {
  app: { ready(): PromiseLike<unknown>; close(): PromiseLike<unknown> };
  /** Fastify's request handler, which every listening server shares. */
  handler: () => RequestHandler | undefined;
}

function buildApi(logger: Logger, agents: Map<string, AgentConnection>): Api {
  let handler: RequestHandler | undefined;
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: (h) => {
      handler = h;
      return createHttpServer(h);
    },
  });

  app.get('/health', async () => ({
    status: 'ok',
    agents: agents.size,
    protocol: PROTOCOL_VERSION,
    version: RELAY_SOFTWARE,
  }));
  app.get('/api/agents', async () => ({
    agents: [...agents.values()].map((agent) => ({
      name: agent.name,
      address: agent.address,
      connectedAt: agent.connectedAt.toISOString(),
      streams: agent.streamCount,
      ports: [...agent.ports.values()],
    })),
  }));

  return { app, handler: () => handler };
}

async function listenAll(
  api: Api,
  options: RelayOptions,
  endpoint: AgentEndpoint,
): Promise<Server[]> {
  await api.app.ready();

  const handler = api.handler();

  if (handler === undefined) {
    throw new Error('fastify did not hand over its request handler');
  }

  const servers: Server[] = [];
  let port = options.port;

  try {
    for (const host of options.hosts) {
      const server =
        options.tls === undefined
          ? createHttpServer(handler)
          : createHttpsServer(options.tls, handler);

      server.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
      server.on('clientError', (_err, socket) => socket.destroy());
      await listen(server, host, port);
      servers.push(server);
      port = (server.address() as { port: number }).port;
    }
  } catch (err) {
    await Promise.all(servers.map((server) => closeServer(server)));
    throw err;
  }

  return servers;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
