// The porthole path: client → relay mirror port → WebSocket → agent → server, with the real
// porthole-relay and porthole-agent command lines as separate processes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { rssBytes, runToEnd, startChild, stopChild, waitForOutput } from './children.mjs';
import { freePort, getJson, LOOPBACK, pollUntil } from './net.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

/**
 * Starts a relay and one agent that maps a fresh host port to `serverPort`. With `profileDir`
 * both write CPU profiles there, and the agent runs as compiled, not bundled, so that its
 * profile names functions and files as the sources do; `idleMs` is how long a fresh agent idles
 * before its memory is read.
 */
export async function startPorthole({ serverPort, tmp, idleMs, profileDir, root = ROOT }) {
  const built = portholeBuild(root);
  const build = profileDir === undefined ? built : { ...built, agent: built.agentCli };
  const { relay, relayPort, env, tokenFor } = await startRelayProcess({
    tmp,
    root,
    label: root === ROOT ? 'porthole-relay' : `porthole-relay (${root})`,
    flags: profileFlags(profileDir, 'relay'),
  });
  const tokens = { main: await tokenFor('bench'), start: await tokenFor('bench-start') };
  const agentFlags = await optionalAgentFlags(build.agent);
  const launchAgent = async (name, token, hostPort, flags = []) => {
    const agent = startChild(
      name,
      process.execPath,
      [
        ...flags,
        build.agent,
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
  root = ROOT,
  label = 'porthole-relay',
  hosts = [LOOPBACK],
  args = [],
  flags = [],
}) {
  const { relay: relayCli } = portholeBuild(root);

  // The key file goes by environment, which the token command and the relay both read: older
  // relays took a `--key-file` given after `token` as the main command's option.
  const env = { XDG_CONFIG_HOME: tmp, PORTHOLE_KEY_FILE: join(tmp, 'relay-key.pem') };
  // The relay creates its key file as it starts: tokens are minted once it listens.
  const tokenFor = (name) => mintToken(relayCli, name, env);
  const relay = startChild(
    label,
    process.execPath,
    [
      ...flags,
      relayCli,
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

/**
 * The built programs of the checkout at `root`: the relay's command line, and the agent as
 * containers run it, the one-file bundle, or where a checkout has none its compiled command line
 * (also given as `agentCli`).
 */
export function portholeBuild(root = ROOT) {
  const relay = join(root, 'packages/relay/dist/cli.js');
  const bundle = join(root, 'packages/agent/dist/porthole-agent.mjs');
  const agentCli = join(root, 'packages/agent/dist/cli.js');

  if (!existsSync(relay) || !existsSync(agentCli)) {
    throw new Error(
      `porthole is not built in ${root}: run \`npm run setup\` there, which builds it`,
    );
  }

  return {
    relay,
    agent: existsSync(bundle) ? bundle : agentCli,
    agentCli,
    bundle: existsSync(bundle) ? bundle : null,
  };
}

/** node flags that write a CPU profile of the process into `dir/name` when it exits. */
export function profileFlags(dir, name) {
  if (dir === undefined) return [];

  // Every 250 µs rather than every 1 ms: a small request costs a hop well under a millisecond.
  return ['--cpu-prof', '--cpu-prof-interval=250', `--cpu-prof-dir=${join(dir, name)}`];
}

async function mintToken(relayCli, name, env) {
  const out = await runToEnd(
    'porthole-relay token',
    process.execPath,
    [relayCli, 'token', '--name', name],
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
async function optionalAgentFlags(agent) {
  const help = await runToEnd('porthole-agent --help', process.execPath, [agent, '--help']);

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
