import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';

import { ErrorCodes } from '@porthole/shared';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerDefault } from 'fastify';

import type { BrowserOpener } from './browser-opener.js';
import { addressScope } from './listen-addresses.js';
import type { Logger } from './logger.js';
import type { LoginBook } from './logins.js';
import { messages } from './messages.js';
import type { RelayMonitor } from './relay-monitor.js';
import { isLoopbackHost } from './request-head.js';
import { STATUS_PAGE_HEADERS, statusPage } from './status-page.js';

/** The relay's fastify app, whose logger is the relay's own. */
type RelayApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;

/** What the status routes need from the relay. */
export interface StatusRoutesOptions {
  /** The relay's listen addresses: besides loopback names, the only Host names answered. */
  hosts: readonly string[];
  scheme: 'http' | 'https';
  monitor: RelayMonitor;
  logins: LoginBook;
  opener: BrowserOpener;
  log: Logger;
  /** Each agent with its ports, as `GET /api/agents` lists them. */
  agentList: () => unknown[];
}

/**
 * Whether a Host header names this relay: a loopback name or one of its listen addresses, with
 * or without a port. A page on another name that resolves here (DNS rebinding) is refused.
 */
export function isRelayHost(host: string | undefined, hosts: readonly string[]): boolean {
  if (isLoopbackHost(host)) return true;

  const name = (host ?? '').toLowerCase().replace(/:\d{1,5}$/, '');

  return hosts.some((address) => (isIP(address) === 6 ? `[${address}]` : address) === name);
}

/**
 * Whether a socket's peer address (`socket.remoteAddress`) is this machine's loopback:
 * 127.0.0.0/8 or ::1, IPv4-mapped IPv6 included. A caller through a container bridge is not.
 */
export function isLoopbackPeer(address: string | undefined): boolean {
  const bare = (address ?? '').replace(/^::ffff:(?=\d+\.)/, '');

  return isIP(bare) !== 0 && addressScope(bare) === 'loopback';
}

/**
 * `GET /` (the status page), `GET /events` (its live feed), `GET /metrics`, `GET /api/agents`
 * and `POST /api/logins/:id/open` (open a login's page again): on the relay's own port, to
 * callers on this machine's loopback only.
 */
export function registerStatusRoutes(app: RelayApp, options: StatusRoutesOptions): void {
  const { monitor, log } = options;

  app.register(async (scope) => {
    scope.addHook('onRequest', async (req, reply) => {
      const peer = req.socket.remoteAddress;

      // The page and the API name every container, its login sites and callback paths, and the feed has
      // a bounded number of places: the relay's address on a container bridge must hand
      // neither to the containers behind it.
      if (!isLoopbackPeer(peer)) {
        log.warn({ path: req.routeOptions.url, peer }, messages.statusRemotePeer());
        await reply
          .code(403)
          .type('text/plain; charset=utf-8')
          .send(
            messages.statusOnlyThisMachine(
              `${options.scheme}://localhost:${req.socket.localPort}/`,
            ),
          );
        return;
      }

      if (isRelayHost(req.headers.host, options.hosts)) return;

      log.warn({ path: req.routeOptions.url }, messages.statusWrongHost());
      await reply.code(421).type('text/plain; charset=utf-8').send(messages.statusOnlyHere());
    });

    scope.get('/', async (_req, reply) =>
      reply.headers(STATUS_PAGE_HEADERS).send(statusPage(monitor.snapshot())),
    );
    // No HEAD route: it would hold a subscriber open with nothing to send it.
    scope.get('/events', { exposeHeadRoute: false }, async (_req, reply) => {
      if (monitor.feed.full) return reply.code(503).send({ error: ErrorCodes.TOO_MANY_PAGES });

      reply.hijack();
      monitor.feed.subscribe(reply.raw);
    });
    scope.get('/metrics', async (_req, reply) =>
      reply
        .type('text/plain; version=0.0.4; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(monitor.metricsText()),
    );
    scope.get('/api/agents', async () => ({ agents: options.agentList() }));
    registerReopen(scope, options);
  });
}

// A login's button posts here: from the status page's own origin only (a form on another
// site cannot make the relay open pages), and with any body ignored.
function registerReopen(scope: FastifyInstance, options: StatusRoutesOptions): void {
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, _body, done) => done(null));
  scope.post<{ Params: { id: string } }>(
    '/api/logins/:id/open',
    { bodyLimit: 1024 },
    async (req, reply) => {
      if (!isSameOrigin(req, options.scheme)) {
        options.log.warn(messages.statusForeignOrigin());
        return reply.code(403).send({ error: ErrorCodes.ORIGIN });
      }

      const page = options.logins.pageOf(req.params.id);

      if (page === undefined) return reply.code(404).send({ error: ErrorCodes.NOT_FOUND });

      options.log.info({ agent: page.agent }, messages.statusReopen(page.agent));
      await options.opener.open(page.agent, page.url);

      return answerReopen(req, reply);
    },
  );
}

function isSameOrigin(req: FastifyRequest, scheme: string): boolean {
  const { origin, host } = req.headers;

  return origin !== undefined && host !== undefined && origin === `${scheme}://${host}`;
}

// The page's script asks for JSON; a plain form post (no JavaScript) goes back to the page.
function answerReopen(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  if ((req.headers.accept ?? '').includes('application/json')) return reply.send({ opened: true });

  return reply.code(303).header('location', '/').send();
}
