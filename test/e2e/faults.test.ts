import { execFileSync } from 'node:child_process';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { createServer, request } from 'node:http';
import { fileURLToPath } from 'node:url';

import { CloseCodes, SHUTDOWN_GRACE_MS } from '@porthole/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';
import { until } from '../helpers/until.js';

// A sample of the relay's /metrics, by its name with labels as printed (`name{label="v"}`).
async function metric(relayUrl: string, sample: string): Promise<number> {
  const text = await (await fetch(`${relayUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));

  if (line === undefined) throw new Error(`no ${sample} in /metrics`);

  return Number(line.slice(sample.length + 1));
}

// Resolves once the relay's status feed shows a request for `agent` that is still waiting.
async function requestWaiting(relayUrl: string, agent: string): Promise<void> {
  const res = await fetch(`${relayUrl}/events`, { signal: AbortSignal.timeout(10_000) });
  const decoder = new TextDecoder();
  let text = '';

  try {
    for await (const chunk of res.body ?? []) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });

      const events = text.split('\n\n');

      text = events.pop() ?? '';
      for (const event of events) {
        const data = /^data: (.*)$/m.exec(event)?.[1];
        const snapshot =
          data === undefined
            ? undefined
            : (JSON.parse(data) as { requests: { agent: string | null; result: string | null }[] });

        if (snapshot?.requests.some((r) => r.agent === agent && r.result === null)) return;
      }
    }
  } finally {
    await res.body?.cancel().catch(() => undefined);
  }

  throw new Error(`the status feed ended before a request for ${agent} waited`);
}

// TCP connections that the relay process holds on a mirrored port, as the kernel lists them.
function relaySockets(relay: Program, port: number): number {
  const listed = execFileSync('ss', ['-Htnp', 'state', 'all', `( sport = :${port} )`], {
    encoding: 'utf8',
  });

  return listed
    .split('\n')
    .filter((line) => !line.startsWith('LISTEN') && line.includes(`pid=${relay.child.pid},`))
    .length;
}

const APP = fileURLToPath(new URL('../fixtures/container-app.mjs', import.meta.url));
const MB = 1024 * 1024;

// Starts a download and resolves once its first bytes arrived; `ended` tells how it finished.
function startDownload(url: string): Promise<{ ended: Promise<string> }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const ended = new Promise<string>((done) => {
        res.on('end', () => done(res.complete ? 'complete' : 'aborted'));
        res.on('error', () => done('aborted'));
        res.on('aborted', () => done('aborted'));
      });

      res.once('data', () => resolve({ ended }));
      res.resume();
    })
      .on('error', reject)
      .end();
  });
}

describe('faults on the container side', () => {
  let relay: RelayProcess;
  let server: ContainerServer;
  let token: string;

  beforeAll(async () => {
    relay = await startRelayProcess();
    server = await startContainerServer({ downloadBytes: 200 * MB });
    token = await mintToken(relay.keyFile, 'faulty');
  });

  afterAll(async () => {
    await relay?.program.stop('SIGKILL');
    await server?.close();
  });

  it('ends the browser response and frees its stream when the agent is killed mid-response', async () => {
    const hostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, token, ['--map', `${hostPort}:${server.port}`]);

    await waitForMirror(relay.url, hostPort);

    const download = await startDownload(`http://localhost:${hostPort}/download`);

    // The gauge and the kernel both see the stream while it flows…
    expect(await metric(relay.url, 'porthole_streams_open')).toBe(1);
    expect(relaySockets(relay.program, hostPort)).toBe(1);
    await agent.stop('SIGKILL');
    expect(await download.ended).toBe('aborted');
    // …and the relay's side of the browser connection is gone too, not left half open.
    await until(
      () => relaySockets(relay.program, hostPort) === 0,
      "the relay's browser socket to close",
    );
    expect(await metric(relay.url, 'porthole_streams_open')).toBe(0);
  });

  it.each([
    ['/oauth/callback on the relay port', 'fixed'],
    ['a mirrored port', 'mirrored'],
  ] as const)(
    'answers a request on %s with a 502 page when the agent is killed before the container answered',
    async (_where, kind) => {
      // A listener that takes the request and never answers: the agent dies before it does.
      const heard: string[] = [];
      const silent = createServer((req) => heard.push(`${req.method} ${req.url}`));

      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));

      const hostPort = kind === 'fixed' ? relay.port : await freePort();
      const agent = startAgentProcess(relay.wsUrl, token, [
        '--map',
        `${hostPort}:${(silent.address() as AddressInfo).port}`,
      ]);

      try {
        await waitForMirror(relay.url, hostPort);

        const path = kind === 'fixed' ? '/oauth/callback' : '/callback';
        const answer = httpRequest(`http://localhost:${hostPort}${path}?code=c`);

        await until(() => heard.length === 1, 'the request to reach the listener');
        await agent.stop('SIGKILL');

        const res = await answer;

        expect(res.status).toBe(502);
        expect(res.headers['content-type']).toMatch(/^text\/html/);
        expect(res.body.toString()).toContain('The container went away');
      } finally {
        await agent.stop('SIGKILL');
        silent.closeAllConnections();
        silent.close();
      }
    },
  );

  it('ends the browser response when the container closes the port mid-stream, and goes on', async () => {
    const hostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, token, ['--map', `${hostPort}:${server.port}`]);

    await waitForMirror(relay.url, hostPort);

    const download = await startDownload(`http://localhost:${hostPort}/download`);

    server.server.closeAllConnections();
    expect(await download.ended).toBe('aborted');

    const next = await httpRequest(`http://localhost:${hostPort}/hello`);

    expect(next.body.toString()).toBe('hello from the container');
    await agent.stop();
  });
});

describe('a relay that restarts', () => {
  it('gets back the agent with its mappings and its logins in progress', async () => {
    const ns = Namespace.create();
    const port = await freePort();
    const first = await startRelayProcess({ port, args: ['--host', ns.hostAddress, '--no-open'] });
    const token = await mintToken(first.keyFile, 'returning');
    const loginPort = await freePort();
    const page = `https://login.example/authorize?state=abc&redirect_uri=${encodeURIComponent(`http://localhost:${loginPort}/callback`)}`;
    const wrapped = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        'run',
        '--relay',
        `ws://${ns.hostAddress}:${port}`,
        '--',
        'sh',
        '-c',
        `xdg-open '${page}' && exec sleep 60`,
      ],
      { PORTHOLE_TOKEN: token },
    );

    await waitForMirror(first.url, loginPort);
    await first.program.stop('SIGKILL');

    const second = await startRelayProcess({
      port,
      keyFile: first.keyFile,
      args: ['--host', ns.hostAddress, '--no-open'],
    });

    await waitForMirror(second.url, loginPort);
    wrapped.child.kill('SIGTERM');
    await wrapped.exited;
    await second.program.stop();
    ns.destroy();
  });
});

// A container mid-login behind a link that goes down: the relay drops the agent's connection
// while the link is down, as its keep-alive does after a long outage, so that a callback
// arriving then must wait for the agent to come back by itself.
describe('a network outage between container and host', () => {
  const STATE = 'outage-state';
  let ns: Namespace;
  let relay: RelayProcess;
  let app: Program;
  let agent: Program;
  let loginPort: number;

  // Starts a relay with `args`, a callback listener and an agent in the middle of a login.
  async function setUp(args: string[]): Promise<void> {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open', ...args] });
    loginPort = await freePort();
    app = ns.spawn(process.execPath, [APP, '127.0.0.1', String(loginPort)]);
    await app.waitForLine(/listening/);

    const page =
      `https://login.example/authorize?state=${STATE}` +
      `&redirect_uri=${encodeURIComponent(`http://localhost:${loginPort}/callback`)}`;

    agent = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        'run',
        '--relay',
        `ws://${ns.hostAddress}:${relay.port}`,
        '--',
        'sh',
        '-c',
        `xdg-open '${page}' && exec sleep 120`,
      ],
      { PORTHOLE_TOKEN: await mintToken(relay.keyFile, 'cut') },
    );
    // The relay prints the page only after it has registered the login's state.
    await relay.program.waitForLine(/asks to open a page on login\.example/);
    await waitForMirror(relay.url, loginPort);
  }

  async function tearDown(): Promise<void> {
    ns?.setLink(true);
    await agent?.stop();
    await app?.stop();
    await relay?.program.stop();
    ns?.destroy();
  }

  // Cuts the link, then has the kernel destroy the relay's end of the agent's connection: the
  // relay loses the agent while the agent, behind the dead link, notices nothing yet.
  async function cutAndDropAgent(): Promise<void> {
    ns.setLink(false);
    execFileSync('ss', ['-K', 'dst', ns.address, `( sport = :${relay.port} )`]);
    await relay.program.waitForLine(/container \\"cut\\" disconnected/);
  }

  const requestsSeen = () =>
    app.lines.filter((line) => line.startsWith('request GET /callback')).length;

  describe('that the agent outlives', () => {
    beforeAll(() => setUp(['--hold', '60s']));
    afterAll(tearDown);

    it('holds the callback while the agent is away and delivers it once when it is back', async () => {
      await cutAndDropAgent();

      const url = `http://localhost:${loginPort}/callback?state=${STATE}&code=during-outage`;
      const callback = httpRequest(url);

      await requestWaiting(relay.url, 'cut');
      expect(requestsSeen()).toBe(0);
      ns.setLink(true);

      const res = await callback;

      expect(res.body.toString()).toBe(
        `container app got GET /callback?state=${STATE}&code=during-outage`,
      );
      expect(requestsSeen()).toBe(1);
      // The agent found out by itself that the relay had dropped it, and came back.
      await agent.waitForLine(/lost the relay/);
      await relay.program.waitForLine(/container \\"cut\\" reconnected/);
    }, 60_000);
  });

  describe('that outlasts the hold', () => {
    beforeAll(() => setUp(['--hold', '2s']));
    afterAll(tearDown);

    it('answers the held callback with an error page when the hold runs out', async () => {
      await cutAndDropAgent();

      const started = Date.now();
      const res = await httpRequest(`http://localhost:${loginPort}/callback?state=${STATE}&code=c`);

      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body.toString()).toContain('cut');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
      expect(requestsSeen()).toBe(0);
    }, 30_000);
  });
});

describe('abuse from the browser side', () => {
  let relay: RelayProcess;
  let server: ContainerServer;
  let agent: Program;
  let hostPort: number;

  beforeAll(async () => {
    relay = await startRelayProcess();
    server = await startContainerServer();
    hostPort = await freePort();
    agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'abused'), [
      '--map',
      `${hostPort}:${server.port}`,
    ]);
    await waitForMirror(relay.url, hostPort);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await server?.close();
  });

  it('answers a head that trickles in too slowly with 408, and keeps serving', async () => {
    const socket = connect(hostPort, '127.0.0.1');
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
    });
    const drip = setInterval(() => socket.write('X'), 500);

    socket.write('GET /callback HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');

    const during = await httpRequest(`http://localhost:${hostPort}/hello`);

    expect(during.body.toString()).toBe('hello from the container');
    expect(await answer).toMatch(/^HTTP\/1\.1 408 /);
    clearInterval(drip);
    expect(server.requests.filter((r) => r.startsWith('GET /callback'))).toEqual([]);
  }, 20_000);

  it('answers a request head over the limit with 431 and forwards nothing', async () => {
    const res = await httpRequest(`http://localhost:${hostPort}/callback?big`, {
      headers: { 'x-padding': 'p'.repeat(40 * 1024) },
    });

    expect(res.status).toBe(431);
    expect(server.requests.filter((r) => r.startsWith('GET /callback?big'))).toEqual([]);
  });

  it('stays within bounded memory under 10,000 idle connections while a login goes on', async () => {
    const before = relay.program.memory().rss;
    const sockets: Socket[] = [];

    for (let i = 0; i < 10_000; i += 1) {
      const socket = connect(hostPort, '127.0.0.1');

      socket.on('error', () => undefined);
      sockets.push(socket);

      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }

    await Promise.all(
      sockets.map(
        (s) =>
          new Promise((resolve) =>
            s.connecting ? s.once('connect', resolve).once('close', resolve) : resolve(null),
          ),
      ),
    );

    const login = await httpRequest(`http://localhost:${hostPort}/hello?state=x`);
    const growth = (relay.program.memory().rss - before) / MB;

    console.log(
      `10,000 idle connections: relay RSS grew by ${growth.toFixed(1)} MB; ${sockets.filter((s) => !s.destroyed).length} still open on the client side`,
    );
    expect(login.body.toString()).toBe('hello from the container');
    expect(growth).toBeLessThan(64);
    for (const socket of sockets) socket.destroy();
  }, 60_000);
});

describe('a relay told to stop', () => {
  it('lets a stream in flight finish, tells the agent to reconnect, and exits 0', async () => {
    const relay = await startRelayProcess();
    const server = await startContainerServer();
    const hostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'draining'), [
      '--map',
      `${hostPort}:${server.port}`,
    ]);

    await waitForMirror(relay.url, hostPort);

    const events = new Promise<string>((resolve, reject) => {
      request(`http://localhost:${hostPort}/events`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      })
        .on('error', reject)
        .end();
    });

    await until(
      () => server.requests.includes('GET /events'),
      'GET /events to reach the container',
    );
    relay.program.child.kill('SIGTERM');
    await relay.program.waitForLine(/letting 1 streams finish/);
    // The stream is still being served: the second event goes through the stopping relay.
    await httpRequest(`http://127.0.0.1:${server.port}/events/next`);

    expect(await events).toBe('data: first\n\ndata: second\n\n');
    expect(await relay.program.exited).toBe(0);

    // The close frame says why, and the agent tells its user rather than reporting a failure.
    const lost = await agent.waitForLine(/the relay is shutting down/);

    expect(JSON.parse(lost)).toMatchObject({ level: 30, code: CloseCodes.RELAY_SHUTDOWN });
    await agent.stop();
    await server.close();
  });

  it('cuts a stream that outlasts the grace period, and still exits 0 soon after it', async () => {
    const relay = await startRelayProcess();
    const server = await startContainerServer();
    const hostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'lingering'), [
      '--map',
      `${hostPort}:${server.port}`,
    ]);

    try {
      await waitForMirror(relay.url, hostPort);

      // An event stream that the container never ends.
      const events = await startDownload(`http://localhost:${hostPort}/events`);
      const stopped = Date.now();

      relay.program.child.kill('SIGTERM');

      expect(await events.ended).toBe('aborted');
      expect(await relay.program.exited).toBe(0);

      const took = Date.now() - stopped;

      expect(took).toBeGreaterThanOrEqual(SHUTDOWN_GRACE_MS - 500);
      expect(took).toBeLessThan(SHUTDOWN_GRACE_MS + 5_000);
      expect(JSON.parse(await agent.waitForLine(/the relay is shutting down/))).toMatchObject({
        code: CloseCodes.RELAY_SHUTDOWN,
      });
    } finally {
      await relay.program.stop('SIGKILL');
      await agent.stop();
      await server.close();
    }
  }, 30_000);
});
