// The porthole path: client → relay mirror port → WebSocket → agent → server, with the real
// porthole-relay and porthole-agent command lines as separate processes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { rssBytes, runToEnd, startChild, stopChild, waitForOutput } from './children.mjs';
import { freePort, getJson, LOOPBACK, pollUntil } from './net.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RELAY_CLI = join(ROOT, 'packages/relay/dist/cli.js');
const AGENT_CLI = join(ROOT, 'packages/agent/dist/cli.js');
const READY_TIMEOUT_MS = 15_000;

/**
 * Starts a relay and one agent that maps a fresh host port to `serverPort`. With `profileDir`
 * both write CPU profiles there; `idleMs` is how long a fresh agent idles before its memory is
 * read.
 */
export async function startPorthole({ serverPort, tmp, idleMs, profileDir }) {
  const { relay, relayPort, env, tokenFor } = await startRelayProcess({
    tmp,
    flags: profileFlags(profileDir, 'relay'),
  });
  const tokens = { main: await tokenFor('bench'), start: await tokenFor('bench-start') };
  const agentFlags = await optionalAgentFlags();
  const launchAgent = async (name, token, hostPort, flags = []) => {
    const agent = startChild(
      name,
      process.execPath,
      [
        ...flags,
        AGENT_CLI,
        ...['--relay', `ws://${LOOPBACK}:${relayPort}`, '--map', `${hostPort}:${serverPort}`],
        ...agentFlags,
      ],
      { env: { ...env, PORTHOLE_TOKEN: token } },
    );

    return { agent, ready: waitForMapping(relayPort, agent, hostPort) };
  };

  const port = await freePort();
  const main = await launchAgent(
    'porthole-agent',
    tokens.main,
    port,
    profileFlags(profileDir, 'agent'),
  );

  await main.ready;

  return {
    port,
    processes: [relay, main.agent],
    // A fresh agent each time: spawn to its mapping listed by the relay, then its idle memory.
    async measureStart() {
      const started = performance.now();
      const fresh = await launchAgent('porthole-agent (start)', tokens.start, await freePort());

      try {
        await fresh.ready;
        const startMs = performance.now() - started;

        await sleep(idleMs);
        return { startMs, agentRss: rssBytes(fresh.agent.pid), relayRss: rssBytes(relay.pid) };
      } finally {
        await stopChild(fresh.agent);
      }
    },
    async close() {
      await stopChild(main.agent);
      await stopChild(relay);
    },
  };
}

/**
 * Starts a porthole-relay on a port the OS chooses, with its key file in `tmp`. Returns the
 * process, its port, the environment that names its key file, and a function that mints a token
 * for an agent name. `hosts` are its listen addresses; `args` go to it as they are.
 */
export async function startRelayProcess({
  tmp,
  label = 'porthole-relay',
  hosts = [LOOPBACK],
  args = [],
  flags = [],
}) {
  if (!existsSync(RELAY_CLI) || !existsSync(AGENT_CLI)) {
    throw new Error('porthole is not built: run `pnpm install && npx tsc -b` first');
  }

  // The key file goes by environment, which the token command and the relay both read: older
  // relays took a `--key-file` given after `token` as the main command's option.
  const env = { XDG_CONFIG_HOME: tmp, PORTHOLE_KEY_FILE: join(tmp, 'relay-key.pem') };
  // The relay creates its key file as it starts: tokens are minted once it listens.
  const tokenFor = (name) => mintToken(name, env);
  const relay = startChild(
    label,
    process.execPath,
    [
      ...flags,
      RELAY_CLI,
      ...['--port', '0', ...hosts.flatMap((h) => ['--host', h]), '--no-open', ...args],
    ],
    { env },
  );

  return {
    relay,
    relayPort: await relayPortOf(relay),
    env,
    keyFile: env.PORTHOLE_KEY_FILE,
    tokenFor,
  };
}

/** The agent's command-line entry point, for paths that start agents of their own. */
export const AGENT_ENTRY = AGENT_CLI;

/** node flags that write a CPU profile of the process into `dir/name` when it exits. */
export function profileFlags(dir, name) {
  return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`];
}

async function mintToken(name, env) {
  const out = await runToEnd(
    'porthole-relay token',
    process.execPath,
    [RELAY_CLI, 'token', '--name', name],
    { env },
  );

  return out.trim();
}

// The relay was told port 0: it prints the address it got in its banner and its log.
async function relayPortOf(relay) {
  const match = await waitForOutput(relay, /http:\/\/127\.0\.0\.1:(\d+)/, READY_TIMEOUT_MS);

  return Number(match[1]);
}

// Flags that keep the agent to the mapping under test, where this agent version has them: on a
// shared loopback its port watcher would otherwise announce every port the benchmark listens on.
async function optionalAgentFlags() {
  const help = await runToEnd('porthole-agent --help', process.execPath, [AGENT_CLI, '--help']);

  return help.includes('--no-watch') ? ['--no-watch'] : [];
}

/** Resolves once the relay lists `hostPort` as mirrored; rejects if `agent` exits first. */
export function waitForMapping(relayPort, agent, hostPort) {
  return pollUntil(
    async () => {
      if (agent.exited) throw new Error(`${agent.label} exited:\n${agent.output.trim()}`);

      const listed = await getJson(relayPort, '/api/agents');

      return listed?.agents?.some((a) =>
        a.ports?.some((p) => p.hostPort === hostPort && p.status === 'mirrored'),
      );
    },
    { what: `${agent.label} mapping port ${hostPort}`, timeoutMs: READY_TIMEOUT_MS },
  );
}
