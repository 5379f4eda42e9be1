import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { httpRequest } from '../helpers/http-client.js';
import { Namespace } from '../helpers/netns.js';
import { dial, freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

const APP = fileURLToPath(new URL('../fixtures/container-app.mjs', import.meta.url));

// The same, from a program inside the namespace.
async function dialFrom(ns: Namespace, host: string, port: number): Promise<string> {
  const client = ns.spawn(process.execPath, [
    '-e',
    `require('node:net').connect(${port}, '${host}')` +
      `.once('connect', function () { console.log('connected'); this.destroy(); })` +
      `.once('error', (err) => console.log(err.code))`,
  ]);

  await client.exited;

  return client.stdout.join('\n');
}

describe('an agent inside a network namespace (the container stand-in)', () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let app: Program;
  let agent: Program;
  let appPort: number;
  let hostPort: number;

  /** Starts an agent named `name` in the namespace, with its own token. */
  async function startAgent(name: string, args: string[]): Promise<Program> {
    const relayUrl = `ws://${ns.hostAddress}:${relay.port}`;

    return ns.spawn(
      process.execPath,
      [AGENT_CLI, '--relay', relayUrl, '--log-level', 'debug', ...args],
      { PORTHOLE_TOKEN: await mintToken(relay.keyFile, name) },
    );
  }

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress] });
    app = ns.spawn(process.execPath, [APP, '127.0.0.1', '0']);
    appPort = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);
    hostPort = await freePort();
    // Only what it is told to map: a test below needs a listener that nothing mirrors.
    agent = await startAgent('netns', ['--no-watch', '--map', `${hostPort}:${appPort}`]);
    await waitForMirror(relay.url, hostPort);
  });

  afterAll(async () => {
    await agent?.stop();
    await app?.stop();
    await relay?.program.stop();
    ns?.destroy();
  });

  it("has a loopback of its own: an app there is on the host's only once porthole mirrors it", async () => {
    // A port number free on the host, so that only a mirror can make it answer there.
    const port = await freePort();
    const inside = ns.spawn(process.execPath, [APP, '127.0.0.1', String(port)]);
    let mirror: Program | undefined;

    try {
      await inside.waitForLine(/listening/);
      expect(await dialFrom(ns, '127.0.0.1', port)).toBe('connected');
      expect([await dial('127.0.0.1', port), await dial('::1', port)]).toEqual([
        'ECONNREFUSED',
        'ECONNREFUSED',
      ]);

      mirror = await startAgent('netns-mirror', ['--no-watch', '--map', `${port}:${port}`]);
      await waitForMirror(relay.url, port);

      const res = await httpRequest(`http://localhost:${port}/callback`);

      expect(res.body.toString()).toBe('container app got GET /callback');
    } finally {
      await mirror?.stop();
      await inside.stop();
    }
  });

  it("cannot reach a listener on the host's loopback, only one on its link", async () => {
    const port = await freePort();
    const servers = [ns.hostAddress, '127.0.0.1'].map((host) => createServer().listen(port, host));

    await Promise.all(servers.map((server) => once(server, 'listening')));

    try {
      expect(await dialFrom(ns, ns.hostAddress, port)).toBe('connected');
      expect(await dialFrom(ns, '127.0.0.1', port)).toBe('ECONNREFUSED');
    } finally {
      for (const server of servers) server.close();
    }
  });

  it('is reached through the mirrored port on the host loopback', async () => {
    const res = await httpRequest(`http://localhost:${hostPort}/callback?code=abc&state=xyz`);

    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('container app got GET /callback?code=abc&state=xyz');
  });

  it('listens for agents on the link address with a warning about private networks', async () => {
    const warning = relay.program.records.find((r) => r['host'] === ns.hostAddress);

    expect(warning?.['level']).toBe(40);
    expect(String(warning?.['msg'])).toContain('a private network address');
    expect(relay.program.output).toContain(
      `relay listening on http://${ns.hostAddress}:${relay.port}`,
    );
  });
});
