#!/usr/bin/env node
import { DEFAULT_RELAY_URL, PortholeError, type PortMapping } from '@porthole/shared';
import { Command, Option } from 'commander';

import { createLogger } from './logger.js';
import { collectMappings, resolveToken } from './options.js';
import { AGENT_SOFTWARE, TunnelClient } from './tunnel-client.js';

interface AgentCliOptions {
  relay: string;
  token?: string;
  tokenFile?: string;
  map?: PortMapping[];
  logLevel: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function fail(err: unknown): never {
  // A PortholeError is meant for the user; anything else is a bug, still told in one line.
  const message = err instanceof PortholeError ? err.message : `unexpected error: ${String(err)}`;

  process.stderr.write(`porthole-agent: ${message}\n`);
  process.exit(1);
}

function env(option: Option, name: string): Option {
  return option.env(`PORTHOLE_${name}`);
}

async function runTunnel(opts: AgentCliOptions): Promise<void> {
  const token = resolveToken(opts.token, opts.tokenFile);
  const logger = createLogger(opts.logLevel);
  const client = new TunnelClient({
    relayUrl: opts.relay,
    token,
    mappings: opts.map ?? [],
    logger,
  });
  const stop = () => client.stop();

  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await client.run();
}

const program = new Command('porthole-agent')
  .description(
    'Runs in a container: dials the porthole relay on the host and carries what reaches the ' +
      "relay's mirrored ports to the same ports on this container's loopback.",
  )
  .version(AGENT_SOFTWARE, '-v, --version')
  .addOption(
    env(new Option('--relay <url>', 'address of the relay').default(DEFAULT_RELAY_URL), 'RELAY'),
  )
  .addOption(env(new Option('--token <token>', 'agent token from "porthole-relay token"'), 'TOKEN'))
  .addOption(env(new Option('--token-file <file>', 'read the token from this file'), 'TOKEN_FILE'))
  .addOption(
    env(
      new Option(
        '--map <hostport:containerport>',
        'carry a host port to a container port; repeatable',
      ).argParser(collectMappings),
      'MAP',
    ),
  )
  .addOption(
    env(
      new Option('--log-level <level>', 'log detail').choices(LOG_LEVELS).default('info'),
      'LOG_LEVEL',
    ),
  )
  .action(runTunnel);

program.parseAsync().catch(fail);
