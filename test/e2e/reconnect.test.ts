import { describe, expect, it } from 'vitest';

import { startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, Program } from '../helpers/processes.js';
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

  it('keeps redialling while the relay is away, each delay under a ceiling that doubles', async () => {
    const delays = await redialDelays([]);

    expect(delays[0]).toBe(0.5);
    delays.forEach((delay, attempt) => {
      expect(delay).toBeGreaterThanOrEqual(0.5);
      expect(delay).toBeLessThanOrEqual(Math.min(30, 0.5 * 2 ** attempt));
    });
  });

  it('doubles its delay with each failed attempt when every jitter draw is the largest', async () => {
    // Full jitter draws each delay between 0.5 s and the ceiling; pinning the draw to its top
    // shows the ceilings themselves, which only a growing attempt count can raise.
    expect(await redialDelays(['--import', LARGEST_DRAW])).toEqual([0.5, 1, 2, 4]);
  });
});

// Replaces Math.random in the agent's process with its largest value short of 1.
const LARGEST_DRAW = `data:text/javascript,Math.random=()=>${1 - Number.EPSILON}`;

/** The first four redial delays (in seconds, as logged) of an agent whose relay is gone. */
async function redialDelays(nodeOptions: string[]): Promise<number[]> {
  const port = await freePort();
  const relay = await startRelayProcess({ port });
  const token = await mintToken(relay.keyFile, 'dev');

  await relay.program.stop();

  const agent = new Program(
    process.execPath,
    [...nodeOptions, AGENT_CLI, '--relay', relay.wsUrl, '--no-watch', '--log-level', 'debug'],
    { PORTHOLE_TOKEN: token },
  );
  const logged = () => agent.lines.filter((line) => line.includes('trying again in'));

  try {
    // The fourth delay is logged after the first three have passed: 3.5 s at most.
    await agent.waitForLine(() => logged().length >= 4);
    expect(agent.child.exitCode).toBe(null);

    return logged()
      .slice(0, 4)
      .map((line) => Number(/trying again in ([\d.]+) s/.exec(line)?.[1]));
  } finally {
    await agent.stop();
  }
}
