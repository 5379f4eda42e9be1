import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { httpRequest } from '../helpers/http-client.js';
import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

const APP = fileURLToPath(new URL('../fixtures/container-app.mjs', import.meta.url));

interface Container {
  ns: Namespace;
  app: Program;
  agent: Program;
}

describe('two containers listening on the same port', () => {
  let relay: RelayProcess;
  let port: number;
  let first: Container;
  let second: Container;

  async function container(ns: Namespace, name: string): Promise<Container> {
    const app = ns.spawn(process.execPath, [APP, '127.0.0.1', String(port)]);

    await app.waitForLine(/listening/);

    const agent = ns.spawn(
      process.execPath,
      [AGENT_CLI, '--relay', `ws://${ns.hostAddress}:${relay.port}`],
      {
        PORTHOLE_TOKEN: await mintToken(relay.keyFile, name),
      },
    );

    await agent.waitForLine(new RegExp(`port ${port} is listening in this container`));

    return { ns, app, agent };
  }

  beforeAll(async () => {
    const namespaces = [Namespace.create(), Namespace.create()] as const;

    port = await freePort();
    relay = await startRelayProcess({
      args: [...namespaces.flatMap((ns) => ['--host', ns.hostAddress]), '--no-open'],
    });
    first = await container(namespaces[0], 'first');
    second = await container(namespaces[1], 'second');
  });

  afterAll(async () => {
    for (const c of [first, second]) {
      await c?.agent.stop();
      await c?.app.stop();
      c?.ns.destroy();
    }
    await relay?.program.stop();
  });

  function requestsOf(c: Container, path: string): number {
    return c.app.lines.filter((line) => line.startsWith(`request GET ${path}`)).length;
  }

  it('sends a request without state to the container that announced the port last', async () => {
    await httpRequest(`http://localhost:${port}/plain`);

    expect([requestsOf(first, '/plain'), requestsOf(second, '/plain')]).toEqual([0, 1]);
  });

  it("sends a callback to the container that registered its state, and the login's follow-up after it", async () => {
    const state = `st${Date.now()}`;
    const page = `https://login.example/authorize?state=${state}&redirect_uri=${encodeURIComponent(`http://localhost:${port}/auth/callback`)}`;
    const open = first.ns.spawn(process.execPath, [AGENT_CLI, 'open', page]);

    expect(await open.exited).toBe(0);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    // Each on a connection of its own, as a browser may open for a redirect.
    await httpRequest(`http://localhost:${port}/auth/callback?code=c&state=${state}`);
    await httpRequest(`http://localhost:${port}/success?id_token=t`);

    expect(requestsOf(first, '/auth/callback')).toBe(1);
    expect(requestsOf(first, '/success')).toBe(1);
    expect(requestsOf(second, '/auth/callback') + requestsOf(second, '/success')).toBe(0);
  });
});

describe("the relay's fixed /oauth/callback", () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let app: Program;
  let agent: Program;
  let appPort: number;

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });
    app = ns.spawn(process.execPath, [APP, '127.0.0.1', '0']);
    appPort = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);
    agent = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        '--relay',
        `ws://${ns.hostAddress}:${relay.port}`,
        '--map',
        `${relay.port}:${appPort}`,
      ],
      { PORTHOLE_TOKEN: await mintToken(relay.keyFile, 'fixed') },
    );
    await waitForMirror(relay.url, relay.port);
  });

  afterAll(async () => {
    await agent?.stop();
    await app?.stop();
    await relay?.program.stop();
    ns?.destroy();
  });

  it('goes to the container port that --map names for the relay port, with no login registered', async () => {
    const res = await httpRequest(
      `http://localhost:${relay.port}/oauth/callback?code=c&state=unregistered`,
    );

    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(
      'container app got GET /oauth/callback?code=c&state=unregistered',
    );
  });

  it('answers 503 on a relay that no agent maps its port for', async () => {
    const bare = await startRelayProcess();

    try {
      const res = await httpRequest(`http://localhost:${bare.port}/oauth/callback?code=c&state=s`);

      expect(res.status).toBe(503);
      expect(res.body.toString()).toContain(`No container serves port ${bare.port}`);
    } finally {
      await bare.program.stop();
    }
  });
});
