import { connect } from 'node:net';
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

function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2_000 });

    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(true);
    });
  });
}

describe('an agent inside a network namespace (the container stand-in)', () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let app: Program;
  let agent: Program;
  let appPort: number;
  let hostPort: number;

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress] });
    app = ns.spawn(process.execPath, [APP, '127.0.0.1', '0']);
    appPort = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);
    hostPort = await freePort();

    const token = await mintToken(relay.keyFile, 'netns');

    agent = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        '--relay',
        `ws://${ns.hostAddress}:${relay.port}`,
        '--map',
        `${hostPort}:${appPort}`,
        '--log-level',
        'debug',
      ],
      { PORTHOLE_TOKEN: token },
    );
    await waitForMirror(relay.url, hostPort);
  });

  afterAll(async () => {
    await agent?.stop();
    await app?.stop();
    await relay?.program.stop();
    ns?.destroy();
  });

  it('cannot be reached from the host without the tunnel', async () => {
    expect(await refused(ns.address, appPort)).toBe(true);
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
