import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

import type { KeyObject } from 'node:crypto';

import {
  AGENT_PATH,
  DEFAULT_HOLD_MS,
  ErrorCodes,
  isNonce,
  LISTEN_BACKLOG,
  networkNamespaceId,
  PortholeError,
  PRE_TOKEN_PROOF_SUFFIX,
  PROTOCOL_VERSION,
  signRelayProof,
} from '@porthole/shared';
import Fastify, { LogController } from 'fastify';

import { AgentConnection } from './agent-connection.js';
import { AgentEndpoint } from './agent-endpoint.js';
import { AgentHub, listAgents } from './agent-hub.js';
import type { AgentRecord } from './agent-record.js';
import { BrowserOpener } from './browser-opener.js';
import { loadOrCreateRelayKey, type RelayKey } from './key-file.js';
import { watchBridges } from './bridge-watch.js';
import { hostPort } from './listen-addresses.js';
import type { Logger } from './logger.js';
import { LoginBook } from './logins.js';
import { messages } from './messages.js';
import { MirrorSet } from './mirrors.js';
import { PortBook } from './port-book.js';
import { gaugesOf, RelayMonitor } from './relay-monitor.js';
import { FIXED_CALLBACK_PATH, Router } from './router.js';
import { registerStatusRoutes, type StatusRoutesOptions } from './status-routes.js';
import { statusSnapshot } from './status-snapshot.js';
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
  /** How long a request waits for its agent to reconnect. */
  holdMs?: number;
  /** Open pages that agents ask for in this machine's browser (they are always printed). */
  openBrowser?: boolean;
  /** Where the pages to open are shown; stderr by default. */
  prompt?: (text: string) => void;
  /**
   * Also listen on container bridges that appear later (Docker started after the relay).
   * For the default listen addresses only: a relay told where to listen listens there alone.
   */
  watchBridges?: boolean;
}

/** A running relay. */
export interface Relay {
  /** The port the relay's own servers listen on (useful with port 0). */
  readonly port: number;
  /** `http(s)://host:port` for each listen address. */
  readonly urls: string[];
  readonly key: RelayKey;
  /** Stops: new connections are refused, streams in flight get up to `graceMs` to finish. */
  close(graceMs?: number): Promise<void>;
}

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Starts a relay: loads or creates its key, then listens on every host. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { logger } = options;
  const holdMs = options.holdMs ?? DEFAULT_HOLD_MS;
  const key = await loadOrCreateRelayKey(options.keyFile);

  if (key.created) {
    logger.info({ file: key.file }, messages.keyCreated(key.file));
  }

  const records = new Map<string, AgentRecord>();
  const monitor: RelayMonitor = new RelayMonitor({
    snapshot: (requests) =>
      statusSnapshot(RELAY_SOFTWARE, records.values(), logins.waiting(), requests),
    gauges: () => gaugesOf(records.values()),
  });
  const mirrors = new MirrorSet<AgentRecord>(options.mirrorHosts, (socket, port) => {
    void router.carryMirrored(socket, port);
  });
  const ports = new PortBook(mirrors, logger, monitor);
  const logins = new LoginBook(ports, monitor);
  const opener = new BrowserOpener(options.openBrowser ?? true, logger, options.prompt);
  const router: Router = new Router({
    mirrors,
    logins,
    agents: () => records.values(),
    holdMs,
    logger,
    events: monitor,
  });
  const hub = new AgentHub(records, ports, logins, opener, holdMs, logger, monitor);
  const endpoint = agentEndpoint(key, logger, hub, monitor);
  // Grows when the bridge watcher finds a new bridge: the status routes answer to its name too.
  const hosts = [...options.hosts];
  const api = buildApi(logger, records, key.privateKey, {
    hosts,
    agentList: () => listAgents(records.values(), logins),
    scheme: options.tls === undefined ? 'http' : 'https',
    monitor,
    logins,
    opener,
    log: logger,
  });
  const listeners = await listenAll(api, options, endpoint, (req, res, next) => {
    if ((req.url ?? '').split('?', 1)[0] === FIXED_CALLBACK_PATH) {
      void router.carryFixed(req, res);
    } else {
      next(req, res);
    }
  });
  const { servers } = listeners;
  const port = (servers[0]?.address() as { port: number }).port;
  const scheme = options.tls === undefined ? 'http' : 'https';
  const urls = options.hosts.map((host) => `${scheme}://${hostPort(host, port)}`);

  mirrors.setOwnPort(port, [`localhost:${port}${FIXED_CALLBACK_PATH}`]);
  router.ownPort = port;

  for (const url of urls) logger.info({ listen: url }, messages.listening(url));

  const stopWatching =
    options.watchBridges === true
      ? watchBridges(
          hosts,
          async (host) => {
            await listeners.add(host, port);

            const url = `${scheme}://${hostPort(host, port)}`;

            logger.info({ listen: url }, messages.listening(url));
          },
          logger,
        )
      : () => undefined;

  return {
    port,
    urls,
    key,
    async close(graceMs = 0) {
      const streams = () => gaugesOf(records.values()).streamsOpen;

      logger.info({ streams: streams() }, messages.shuttingDown(streams(), graceMs));
      // Stop taking anything new, let what is in flight finish, then send the agents off to
      // reconnect (to this relay's successor, if it comes back).
      stopWatching();
      mirrors.closeAll();
      endpoint.close();
      monitor.close();

      const closed = Promise.all(servers.map((server) => closeServer(server)));

      await untilDrained(streams, graceMs);
      hub.closeAll();
      await closed;
      await api.app.close();
    },
  };
}

// The agents' endpoint: each authenticated WebSocket becomes a connection that the hub follows.
function agentEndpoint(
  key: RelayKey,
  logger: Logger,
  hub: AgentHub,
  monitor: RelayMonitor,
): AgentEndpoint {
  const network = networkNamespaceId();

  return new AgentEndpoint(
    key.publicKey,
    logger,
    (ws, socket, claims, address) => {
      new AgentConnection(ws, socket, claims, address, {
        privateKey: key.privateKey,
        software: RELAY_SOFTWARE,
        logger,
        network,
        onReady: (connection) => hub.ready(connection),
        onMessage: (connection, message) => hub.message(connection, message),
        onClose: (connection) => hub.closed(connection),
      });
    },
    monitor,
  );
}

// Resolves once `streams()` is 0 or `graceMs` has passed.
async function untilDrained(streams: () => number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;

  while (streams() > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Api {
  app: { ready(): PromiseLike<unknown>; close(): PromiseLike<unknown> };
  /** Fastify's request handler, which every listening server shares. */
  handler: () => RequestHandler | undefined;
}

function buildApi(
  logger: Logger,
  records: Map<string, AgentRecord>,
  privateKey: KeyObject,
  status: StatusRoutesOptions,
): Api {
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
    agents: gaugesOf(records.values()).agentsConnected,
    protocol: PROTOCOL_VERSION,
    version: RELAY_SOFTWARE,
  }));
  // An agent asks this before it sends its token anywhere (see the agent's tunnel client).
  app.get(`${AGENT_PATH}${PRE_TOKEN_PROOF_SUFFIX}`, async (request, reply) => {
    const { nonce } = request.query as { nonce?: unknown };

    if (typeof nonce !== 'string' || !isNonce(nonce)) {
      return reply.code(400).send({ error: ErrorCodes.HANDSHAKE });
    }

    return { proof: signRelayProof(privateKey, nonce, 'pre-token') };
  });

  registerStatusRoutes(app, status);

  return { app, handler: () => handler };
}

type Intercept = (req: IncomingMessage, res: ServerResponse, next: RequestHandler) => void;

/** The relay's own servers, and a way to start one more on another address. */
interface Listeners {
  readonly servers: Server[];
  add(host: string, port: number): Promise<Server>;
}

async function listenAll(
  api: Api,
  options: RelayOptions,
  endpoint: AgentEndpoint,
  intercept: Intercept,
): Promise<Listeners> {
  await api.app.ready();

  const fastifyHandler = api.handler();

  if (fastifyHandler === undefined) {
    throw new Error('fastify did not hand over its request handler');
  }

  const handler: RequestHandler = (req, res) => intercept(req, res, fastifyHandler);
  const servers: Server[] = [];
  const add = async (host: string, port: number): Promise<Server> => {
    const server =
      options.tls === undefined
        ? createHttpServer(handler)
        : createHttpsServer(options.tls, handler);

    server.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
    server.on('clientError', (_err, socket) => socket.destroy());
    await listen(server, host, port).catch((err: NodeJS.ErrnoException) => {
      throw new PortholeError(
        ErrorCodes.INVALID_OPTION,
        messages.cannotListen(hostPort(host, port), err.code ?? err.message),
      );
    });
    servers.push(server);

    return server;
  };
  let port = options.port;

  try {
    for (const host of options.hosts) {
      port = ((await add(host, port)).address() as { port: number }).port;
    }
  } catch (err) {
    await Promise.all(servers.map((server) => closeServer(server)));
    throw err;
  }

  return { servers, add };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
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
