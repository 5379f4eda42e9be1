// Many agents in one process, through the library API: one TunnelClient per agent, each with a
// token of its own name minted with the relay's key. The last one maps a host port, as
// `--map HOSTPORT:CONTAINERPORT` would. Usage:
//
//   node agent-fleet.mjs '{"relayUrl":…,"keyFile":…,"count":N,"concurrency":C,"map":{…}}'
//
// Prints {"connected":N,"ms":T} once every agent has completed its handshake (T from the first
// dial to the last handshake), or {"error":…}; exits when its standard input closes.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { createLogger, TunnelClient } from '@porthole/agent';
import { mintAgentToken } from '@porthole/shared';

const TOKEN_TTL_MS = 60 * 60_000;

const { relayUrl, keyFile, count, concurrency, map } = JSON.parse(process.argv[2]);
const privateKey = createPrivateKey(readFileSync(keyFile));
const logger = createLogger('silent');
const clients = [];

function report(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main() {
  const tokens = [];

  for (let i = 0; i < count; i += 1) {
    tokens.push(await mintAgentToken({ privateKey, name: `fleet-${i}`, ttlMs: TOKEN_TTL_MS }));
  }

  const started = performance.now();
  let next = 0;
  let connected = 0;

  // At most `concurrency` handshakes at once, as containers starting in a burst would be; each
  // agent that connects lets the next one dial.
  await new Promise((resolve, reject) => {
    const dial = () => {
      const i = next;

      next += 1;

      const client = new TunnelClient({
        relayUrl,
        token: tokens[i],
        mappings: i === count - 1 ? [map] : [],
        logger,
      });
      let first = true;

      clients.push(client);
      client
        .run(() => {
          if (!first) return;

          first = false;
          connected += 1;
          if (connected === count) resolve();
          else if (next < count) dial();
        })
        .catch(reject);
    };

    for (let i = 0; i < Math.min(concurrency, count); i += 1) dial();
  });

  report({ connected, ms: performance.now() - started });
}

function stop() {
  for (const client of clients) client.stop();
  process.exit(0);
}

process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
main().catch((err) => report({ error: String(err?.message ?? err) }));
