/**
 * An agent started where the relay runs (by mistake, or in a container with --network host)
 * shares its loopback: a mirror of its port P would be the very 127.0.0.1:P it dials, and each
 * connection would come back as another one, without end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';
import { portsOf } from '../helpers/relay-api.js';

describe('an agent in the relay’s own network namespace', () => {
  let relay: RelayProcess;
  let server: ContainerServer;
  let agent: Program;
  let sameNumber: number;
  let otherNumber: number;

  beforeAll(async () => {
    relay = await startRelayProcess();
    server = await startContainerServer();
    // A port nothing listens on yet, mapped to itself: its mirror is what the agent would dial.
    sameNumber = await freePort();
    otherNumber = await freePort();
    // The watcher runs: it sees every listener on this machine, the relay's own among them.
    agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'on-the-host'), [
      '--map',
      `${sameNumber}:${sameNumber}`,
      '--map',
      `${otherNumber}:${server.port}`,
    ]);
    await waitForMirror(relay.url, otherNumber);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await server?.close();
  });

  it('is told so, and says what to do instead', async () => {
    await agent.waitForLine(/runs in the relay's own network .* carries only --map ports/);
  });

  it('gets no mirror for a port under its own number, and the relay says why', async () => {
    const ports = await portsOf(relay.url, 'on-the-host');

    expect(ports.find((p) => p.hostPort === sameNumber)).toMatchObject({
      status: 'failed',
      sources: ['map'],
    });
    await agent.waitForLine(new RegExp(`port ${sameNumber} is not mirrored`));
    // Nothing listens there, so a browser is refused at once instead of starting a loop.
    await expect(httpRequest(`http://127.0.0.1:${sameNumber}/`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('announces none of the listening ports it sees, which are reachable as they are', async () => {
    const ports = await portsOf(relay.url, 'on-the-host');

    expect(ports.filter((p) => p.sources.includes('listening'))).toEqual([]);
    expect(ports.map((p) => p.hostPort).sort()).toEqual([sameNumber, otherNumber].sort());
  });

  it('still carries a port mapped under another number', async () => {
    const res = await httpRequest(`http://127.0.0.1:${otherNumber}/hello`);

    expect(res.body.toString()).toBe('hello from the container');
  });
});
