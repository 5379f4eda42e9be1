// The port watcher: how long from a program's listen() in the container to its port listed as
// mirrored by the relay. The agent runs without --no-watch in a network namespace of its own
// (the container), or, where namespaces are not available, on the host's loopback with the
// relay mirroring on 127.0.0.2 so that a mirror never collides with the listener itself.
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { rssBytes, startChild, stopChild, waitForOutput } from './children.mjs';
import { elapsedUs, threadTimes } from './cpu.mjs';
import { createNamespace } from './netns.mjs';
import { freePort, getJson, LOOPBACK, pollUntil } from './net.mjs';
import { portholeBuild, startRelayProcess } from './porthole.mjs';

const LISTENER = fileURLToPath(new URL('port-listener.mjs', import.meta.url));
const AGENT_NAME = 'bench-watch';
const POLL_MS = 5;
const STEP_TIMEOUT_MS = 10_000;

/**
 * Measures the watching agent at rest (its CPU time over `idleMs` and its RSS after it), then
 * runs `trials` listen() → mirrored measurements. Returns { idleCpu: percent of one core,
 * idleRss: bytes, detectMs: [ms per trial], where }: `where` says whether the agent ran in a
 * namespace or on loopback, and why.
 */
export async function measureDetection({ tmp, trials, idleMs }) {
  const { ns, why } = createNamespace();
  const started = [];

  try {
    const { relay, relayPort, env, tokenFor } = await startRelayProcess({
      tmp,
      label: 'porthole-relay (watch)',
      hosts: ns === null ? [LOOPBACK] : [LOOPBACK, ns.hostAddress],
      args: ns === null ? ['--mirror-host', '127.0.0.2'] : [],
    });

    started.push(relay);

    const run = (label, args, options) =>
      ns === null
        ? startChild(label, process.execPath, args, options)
        : ns.start(label, process.execPath, args, options);
    const relayUrl = `ws://${ns === null ? LOOPBACK : ns.hostAddress}:${relayPort}`;
    const agent = run('porthole-agent (watch)', [portholeBuild().agent, '--relay', relayUrl], {
      env: { ...env, PORTHOLE_TOKEN: await tokenFor(AGENT_NAME) },
    });

    started.push(agent);
    await waitForAgent(relayPort, agent);

    // At rest the agent only watches: what it spends then, it spends in every idle container.
    // (`ip netns exec` execs the agent, so the child's pid is the agent's.)
    await sleep(idleMs);
    const before = threadTimes([agent.child.pid]);
    await sleep(idleMs);
    const idle = elapsedUs(before, threadTimes([agent.child.pid]));
    const idleCpu = idle === null ? NaN : (idle.runUs / 1000 / idleMs) * 100;
    const idleRss = rssBytes(agent.child.pid);

    const listener = run('port listener', [LISTENER], { stdin: 'pipe' });

    started.push(listener);

    const detectMs = [];

    for (let i = 0; i < trials; i += 1) {
      detectMs.push(await trial(relayPort, listener, await freePort()));
      // Listens start at any moment of the watcher's polling cycle, as a program's would.
      await sleep(Math.random() * 100);
    }

    return {
      idleCpu,
      idleRss,
      detectMs,
      where: ns === null ? `on the host's loopback (${why})` : 'in a network namespace',
    };
  } finally {
    for (const handle of started.reverse()) await stopChild(handle);
    ns?.destroy();
  }
}

// One listen() → mirrored, in ms, then the port is closed and gone from the list again.
async function trial(relayPort, listener, port) {
  listener.child.stdin.write(`listen ${port}\n`);

  const match = await waitForOutput(
    listener,
    new RegExp(`\\{"listening":${port},"at":([0-9.]+)\\}`),
    STEP_TIMEOUT_MS,
  );
  const listenedAt = Number(match[1]);

  await pollUntil(async () => (await portStatus(relayPort, port)) === 'mirrored', {
    what: `port ${port} mirrored`,
    timeoutMs: STEP_TIMEOUT_MS,
    intervalMs: POLL_MS,
  });

  const seenAt = performance.timeOrigin + performance.now();

  listener.child.stdin.write(`close ${port}\n`);
  await pollUntil(async () => (await portStatus(relayPort, port)) === undefined, {
    what: `port ${port} gone`,
    timeoutMs: STEP_TIMEOUT_MS,
    intervalMs: 20,
  });

  return seenAt - listenedAt;
}

async function portStatus(relayPort, port) {
  const listed = await getJson(relayPort, '/api/agents');
  const agent = listed?.agents?.find((a) => a.name === AGENT_NAME);

  return agent?.ports?.find((p) => p.containerPort === port)?.status;
}

function waitForAgent(relayPort, agent) {
  return pollUntil(
    async () => {
      if (agent.exited) throw new Error(`${agent.label} exited:\n${agent.output.trim()}`);

      const listed = await getJson(relayPort, '/api/agents');

      return listed?.agents?.some((a) => a.name === AGENT_NAME && a.status === 'connected');
    },
    { what: `${AGENT_NAME} connected`, timeoutMs: STEP_TIMEOUT_MS },
  );
}
