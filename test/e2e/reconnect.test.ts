import { describe, expect, it } from 'vitest';

import { startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import {
  mintToken,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

describe('a relay that dies and comes back', () => {
  it('gets its agent back by itself, with the mapping working again', async () => {
    const server = await startContainerServer();
    const port = await freePort();
    const hostPort = await freePort();
    const first = await startRelayProcess({ port });
    const token = await mintToken(first.keyFile, 'dev');
    const agent = startAgentProcess(first.wsUrl, token, ['--map', `${hostPort}:${server.port}`]);

    await waitForMirror(first.url, hostPort);
    await first.program.stop('SIGKILL');
    await agent.waitForLine(/lost the relay|not reachable/);

    const second = await startRelayProcess({ port, keyFile: first.keyFile });

    await waitForMirror(second.url, hostPort);

    const res = await httpRequest(`http://localhost:${hostPort}/hello`);

    expect(res.body.toString()).toBe('hello from the container');
    expect(agent.lines.filter((l) => l.includes('connected to the relay'))).toHaveLength(2);
    await agent.stop();
    await second.program.stop();
    await server.close();
  });

  it('keeps redialling with growing delays while the relay is away', async () => {
    const port = await freePort();
    const relay = await startRelayProcess({ port });
    const token = await mintToken(relay.keyFile, 'dev');

    await relay.program.stop();

    const agent = startAgentProcess(relay.wsUrl, token);

    await agent.waitForLine(/trying again in/);
    await agent.waitForLine(
      (line) =>
        (line.match(/trying again in/g) ?? []).length > 0 &&
        agent.lines.filter((l) => l.includes('trying again in')).length >= 3,
    );

    const delays = agent.lines
      .filter((l) => l.includes('trying again in'))
      .map((l) => Number(/trying again in ([\d.]+) s/.exec(l)?.[1]));

    expect(delays[0]).toBe(0.5);
    expect(delays.every((d) => d >= 0.5 && d <= 30)).toBe(true);
    expect(agent.child.exitCode).toBe(null);
    await agent.stop();
  });
});
