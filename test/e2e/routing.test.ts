import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { httpRequest } from '../helpers/http-client.js';
import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import { mintToken, type RelayProcess, startRelayProcess } from '../helpers/relay.js';

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
