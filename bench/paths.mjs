// The ways from the client to the same server. Each path gives the port the client dials
// and, where the path has a tunnel process to start, a measurement of that start.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { rssBytes, startChild, stopChild, waitForOutput } from './children.mjs';
import { profileFlags, startPorthole } from './porthole.mjs';
import { sshUnavailable, startSsh } from './ssh.mjs';

const SERVER = fileURLToPath(new URL('http-server.mjs', import.meta.url));
const PROXY = fileURLToPath(new URL('tcp-proxy.mjs', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

export const PATH_KEYS = ['direct', 'hops', 'porthole', 'baseline', 'ssh'];

// `baseline` runs only with `--baseline DIR`, which names it after that checkout.
export const PATH_LABELS = {
  direct: 'direct',
  hops: 'two plain hops',
  porthole: 'porthole',
  baseline: 'porthole before',
  ssh: 'ssh -R',
};

/**
 * Starts the server and every path to it. Returns the paths that run (keyed as PATH_KEYS), the
 * reasons for those that cannot, and a close function that ends them all. With `baselineRoot`
 * (another checkout, built) its porthole runs too, as the path `baseline`.
 */
export async function startPaths({
  tmp,
  idleMs,
  profileDir,
  baselineRoot,
  only = PATH_KEYS.filter((key) => key !== 'baseline' || baselineRoot !== undefined),
}) {
  const server = await startNodeService(
    'http server',
    SERVER,
    [],
    profileFlags(profileDir, 'server'),
  );
  const paths = { direct: { port: server.port, processes: [server.child] } };
  const skipped = {};

  // A start that fails throws: the caller then kills every child it has, started or half-started.
  if (only.includes('hops')) paths.hops = await startTwoHops(server.port, idleMs, profileDir);
  if (only.includes('porthole')) {
    paths.porthole = await startPorthole({ serverPort: server.port, tmp, idleMs, profileDir });
  }
  if (only.includes('baseline')) {
    const baselineTmp = join(tmp, 'baseline');

    mkdirSync(baselineTmp);
    paths.baseline = await startPorthole({
      serverPort: server.port,
      tmp: baselineTmp,
      idleMs,
      root: baselineRoot,
    });
  }
  if (only.includes('ssh')) {
    const reason = await sshUnavailable();

    // ssh -R is a reference, not the subject: without it the other columns still stand.
    if (reason !== null) skipped.ssh = reason;
    else {
      try {
        paths.ssh = await startSsh({ serverPort: server.port, tmp, idleMs });
      } catch (err) {
        skipped.ssh = `could not start: ${err.message}`;
      }
    }
  }

  // What the accounting of CPU time reads: the server every path ends at, and the processes of
  // the path's own tunnel (direct has none).
  for (const [key, path] of Object.entries(paths)) {
    path.server = server.child;
    path.tunnel = key === 'direct' ? [] : path.processes;
  }

  return {
    paths,
    skipped,
    // Tunnels first, server last, so that nothing reconnects or logs errors on the way down.
    async close() {
      for (const key of ['ssh', 'baseline', 'porthole', 'hops']) await paths[key]?.close();
      await stopChild(server.child);
    },
  };
}

// client → proxy1 → proxy2 → server. proxy1 stands where the relay stands, proxy2 where the agent
// does; a fresh proxy2 gives the start time and memory of a bare Node process: their floor.
async function startTwoHops(serverPort, idleMs, profileDir) {
  const inner = await startNodeService(
    'proxy2',
    PROXY,
    [serverPort],
    profileFlags(profileDir, 'proxy2'),
  );
  const outer = await startNodeService(
    'proxy1',
    PROXY,
    [inner.port],
    profileFlags(profileDir, 'proxy1'),
  );

  return {
    port: outer.port,
    processes: [outer.child, inner.child],
    async measureStart() {
      const started = performance.now();
      const fresh = await startNodeService('proxy (start)', PROXY, [serverPort]);

      try {
        const startMs = performance.now() - started;

        await sleep(idleMs);
        return {
          startMs,
          agentRss: rssBytes(fresh.child.pid),
          relayRss: rssBytes(outer.child.pid),
        };
      } finally {
        await stopChild(fresh.child);
      }
    },
    async close() {
      await stopChild(outer.child);
      await stopChild(inner.child);
    },
  };
}

// One of our own Node helpers: its standard input is a pipe from us, so it ends when we do.
async function startNodeService(label, script, args, flags = []) {
  const child = startChild(label, process.execPath, [...flags, script, ...args.map(String)], {
    stdin: 'pipe',
  });
  const match = await waitForOutput(child, /\{"port":(\d+)\}/, READY_TIMEOUT_MS);

  return { child, port: Number(match[1]) };
}
