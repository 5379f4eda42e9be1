// One relay with many connected agents: what each idle agent costs the relay in memory, how long
// they take to connect, and whether a request still goes through the last one. The agents share
// one helper process (bench/agent-fleet.mjs), through the agent's library API.
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { rssBytes, startChild, stopChild, waitForOutput } from './children.mjs';
import { timedGet } from './measure.mjs';
import { freePort, getJson, LOOPBACK, pollUntil } from './net.mjs';
import { startRelayProcess } from './porthole.mjs';

const FLEET = fileURLToPath(new URL('agent-fleet.mjs', import.meta.url));
// Handshakes in flight at once: a burst of containers starting, not a SYN flood.
const CONCURRENCY = 50;
const SETTLE_MS = 2000;
const CONNECT_TIMEOUT_MS = 120_000;
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * Starts a fresh relay, reads its idle RSS, connects `count` agents to it, lets it settle and
 * reads its RSS again. Returns { perAgentBytes, connectMs, requestMs, listed }: the growth per
 * agent, the time from the first dial to the last handshake, the time of one GET through the
 * last agent's mapping to `serverPort`, and how many agents the relay lists as connected.
 */
export async function measureFleet({ tmp, count, serverPort }) {
  const { relay, relayPort, keyFile } = await startRelayProcess({
    tmp,
    label: 'porthole-relay (fleet)',
  });
  let fleet;

  try {
    await sleep(SETTLE_MS);

    const before = rssBytes(relay.pid);
    const hostPort = await freePort();
    const config = {
      relayUrl: `ws://${LOOPBACK}:${relayPort}`,
      keyFile,
      count,
      concurrency: CONCURRENCY,
      map: { hostPort, containerPort: serverPort },
    };

    fleet = startChild('agent fleet', process.execPath, [FLEET, JSON.stringify(config)], {
      stdin: 'pipe',
    });

    const match = await waitForOutput(fleet, /\{"(connected|error)".*\}/, CONNECT_TIMEOUT_MS);
    const done = JSON.parse(match[0]);

    if (done.error !== undefined) throw new Error(`agent fleet: ${done.error}`);

    await waitForMirror(relayPort, hostPort);
    await sleep(SETTLE_MS);

    const after = rssBytes(relay.pid);
    const listed = await connectedAgents(relayPort);
    const request = await timedGet(hostPort, '/small', REQUEST_TIMEOUT_MS);

    return {
      perAgentBytes: (after - before) / count,
      connectMs: done.ms,
      requestMs: request.ms,
      listed,
    };
  } finally {
    if (fleet !== undefined) await stopChild(fleet);
    await stopChild(relay);
  }
}

async function connectedAgents(relayPort) {
  const listed = await getJson(relayPort, '/api/agents', 10_000);

  return listed?.agents?.filter((a) => a.status === 'connected').length ?? 0;
}

function waitForMirror(relayPort, hostPort) {
  return pollUntil(
    async () => {
      const listed = await getJson(relayPort, '/api/agents', 10_000);

      return listed?.agents?.some((a) =>
        a.ports?.some((p) => p.hostPort === hostPort && p.status === 'mirrored'),
      );
    },
    { what: `the last agent's mapping of port ${hostPort}`, timeoutMs: 30_000, intervalMs: 50 },
  );
}
