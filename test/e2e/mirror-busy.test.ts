import { connect, createServer, type Server } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { dial, freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import { type ListedPort, listAgents } from '../helpers/relay-api.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';
import { until } from '../helpers/until.js';

// pino's number for "warn".
const WARN = 40;

async function agentPorts(relayUrl: string): Promise<ListedPort[]> {
  return (await listAgents(relayUrl)).flatMap((agent) => agent.ports);
}

describe('a mapped host port that another program already holds', () => {
  let relay: RelayProcess;
  let agent: Program;
  let container: ContainerServer;
  let blocker: Server;
  let busyPort: number;
  let freeHostPort: number;

  beforeAll(async () => {
    // Another program on the relay's machine owns the host port on 127.0.0.1.
    blocker = createServer((socket) => socket.end('the other program\n'));
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    busyPort = (blocker.address() as { port: number }).port;

    container = await startContainerServer();
    // A relay that keeps a lost agent's ports open for its return (--hold) keeps them only
    // this long; one without that setting ignores the variable.
    relay = await startRelayProcess({ env: { PORTHOLE_HOLD: '1s' } });
    freeHostPort = await freePort();
    agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'dev'), [
      '--map',
      `${busyPort}:${container.port}`,
      '--map',
      `${freeHostPort}:${container.port}`,
    ]);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await container?.close();
    blocker?.close();
  });

  it('makes the relay warn that the host port is already in use', async () => {
    await relay.program.waitForLine((line) => line.includes(`host port ${busyPort} is already`));

    const record = relay.program.records.find((r) =>
      String(r['msg']).includes(`host port ${busyPort} is already in use`),
    );

    expect(record?.['level']).toBe(WARN);
    expect(record?.['msg']).toBe(
      `cannot mirror port ${container.port} of container "dev": host port ${busyPort} is ` +
        'already in use on this machine',
    );
  });

  it('shows the port as "busy" in /api/agents', async () => {
    await until(
      async () =>
        (await agentPorts(relay.url)).find((p) => p.hostPort === busyPort)?.status === 'busy',
      `port ${busyPort} shown as busy`,
    );

    expect((await agentPorts(relay.url)).find((p) => p.hostPort === busyPort)).toMatchObject({
      hostPort: busyPort,
      containerPort: container.port,
      status: 'busy',
    });
  });

  it('makes the agent warn that the port is not mirrored because the host port is in use', async () => {
    await agent.waitForLine((line) => line.includes(`host port ${busyPort} is already`));

    const record = agent.records.find((r) =>
      String(r['msg']).includes(`host port ${busyPort} is already in use`),
    );

    expect(record?.['level']).toBe(WARN);
    expect(record?.['msg']).toMatch(
      new RegExp(
        `^port ${container.port} is not mirrored: host port ${busyPort} is already in use`,
      ),
    );
  });

  it("leaves the agent's other mapping working", async () => {
    await waitForMirror(relay.url, freeHostPort);

    const res = await httpRequest(`http://localhost:${freeHostPort}/hello`);

    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello from the container');
  });

  it('leaves the other program alone on its port', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(busyPort, '127.0.0.1');
      let text = '';

      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });

    expect(answer).toBe('the other program\n');
  });

  it('stops listening on its mirror ports once the agent has disconnected', async () => {
    await waitForMirror(relay.url, freeHostPort);
    await agent.stop();

    for (const host of ['127.0.0.1', '::1']) {
      let last = '';

      await until(
        async () => (last = await dial(host, freeHostPort)) === 'ECONNREFUSED',
        () => `${host} port ${freeHostPort} to refuse connections (last: ${last})`,
      );
    }
  });
});
