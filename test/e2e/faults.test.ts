import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';

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

// Polls `check` every 20 ms until it holds (10 s at most).
async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;

  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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

  it('ends the browser response cleanly when the agent is killed mid-response', async () => {
    const hostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, token, ['--map', `${hostPort}:${server.port}`]);

    await waitForMirror(relay.url, hostPort);

    const download = await startDownload(`http://localhost:${hostPort}/download`);

    await agent.stop('SIGKILL');
    expect(await download.ended).toBe('aborted');

    const agents = (await (await fetch(`${relay.url}/api/agents`)).json()) as {
      agents: { status: string; streams: number }[];
    };

    expect(agents.agents[0]).toMatchObject({ status: 'reconnecting', streams: 0 });
  });

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

describe('a network outage between container and host', () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let app: Program;
  let agent: Program;
  let appPort: number;

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress] });
    app = ns.spawn(process.execPath, [APP, '127.0.0.1', '0']);
    appPort = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);

    const token = await mintToken(relay.keyFile, 'cut');

    agent = ns.spawn(
      process.execPath,
      [AGENT_CLI, '--relay', `ws://${ns.hostAddress}:${relay.port}`],
      {
        PORTHOLE_TOKEN: token,
      },
    );
    await waitForMirror(relay.url, appPort);
  });

  afterAll(async () => {
    ns?.setLink(true);
    await agent?.stop();
    await app?.stop();
    await relay?.program.stop();
    ns?.destroy();
  });

  it('delivers a callback sent during a 10 s outage exactly once, after the link returns', async () => {
    ns.setLink(false);

    const callback = httpRequest(`http://localhost:${appPort}/callback?code=during-outage`);

    await new Promise((resolve) => setTimeout(resolve, 10_000));
    ns.setLink(true);

    const res = await callback;

    expect(res.body.toString()).toBe('container app got GET /callback?code=during-outage');
    expect(app.lines.filter((l) => l === 'request GET /callback?code=during-outage')).toHaveLength(
      1,
    );
  }, 40_000);
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

    await until(() => server.requests.includes('GET /events'));
    relay.program.child.kill('SIGTERM');
    await relay.program.waitForLine(/letting 1 streams finish/);
    // The stream is still being served: the second event goes through the stopping relay.
    await httpRequest(`http://127.0.0.1:${server.port}/events/next`);

    expect(await events).toBe('data: first\n\ndata: second\n\n');
    expect(await relay.program.exited).toBe(0);
    await agent.waitForLine(/lost the relay/);
    await agent.stop();
    await server.close();
  });
});
