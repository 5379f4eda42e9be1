#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import {
  DEFAULT_MIRROR_HOSTS,
  DEFAULT_RELAY_URL,
  DEFAULT_RELAY_PORT,
  DEFAULT_TOKEN_TTL,
  checkAgentName,
  envFlag,
  LOG_LEVELS,
  mintAgentToken,
  PortholeError,
  SHUTDOWN_GRACE_MS,
  tuneGarbageCollector,
} from '@porthole/shared';
import { Command, Option } from 'commander';

import { defaultKeyFile, loadOrCreateRelayKey } from './key-file.js';
import { createLogger } from './logger.js';
import { messages } from './messages.js';
import {
  collect,
  loadTls,
  parseHold,
  parsePort,
  parseTtl,
  planListen,
  planMirrors,
} from './options.js';
import { startRelay } from './relay.js';
import { RELAY_SOFTWARE } from './version.js';

tuneGarbageCollector();

interface ServeOptions {
  host: string[];
  port: number;
  keyFile: string;
  mirrorHost: string[];
  open: boolean;
  hold: string;
  tlsCert?: string;
  tlsKey?: string;
  insecure: boolean;
  logLevel: string;
}

function fail(err: unknown): never {
  // A PortholeError is meant for the user; anything else is a bug, still told in one line.
  const message = err instanceof PortholeError ? err.message : `unexpected error: ${String(err)}`;

  process.stderr.write(`porthole-relay: ${message}\n`);
  process.exit(1);
}

function env(option: Option, name: string): Option {
  return option.env(`PORTHOLE_${name}`);
}

function keyFileOption(description = "the relay's private key"): Option {
  return env(new Option('--key-file <file>', description).default(defaultKeyFile()), 'KEY_FILE');
}

// How a user re-runs this program: through npm, pnpm, or the installed command.
function invokedAs(): string {
  return process.env['npm_lifecycle_event'] === 'start'
    ? 'npm run -s token --'
    : 'porthole-relay token';
}

function banner(urls: string[], keyFile: string, port: number, scheme: 'ws' | 'wss'): string {
  const keyArg = keyFile === defaultKeyFile() ? '' : ` --key-file ${keyFile}`;
  // The agent's default is ws://host.docker.internal:8888: say more only when it differs.
  const relayUrl = `${scheme}://host.docker.internal:${port}`;
  const relayArg = relayUrl === DEFAULT_RELAY_URL ? '' : ` --relay ${relayUrl}`;

  return [
    '',
    `porthole relay is up: ${urls.join(', ')}`,
    '',
    'To connect a container, mint a token for it here:',
    `  ${invokedAs()} --name dev${keyArg}`,
    'and start the tool in the container through the agent, with that token:',
    `  PORTHOLE_TOKEN=<token> ${agentCommand()} run${relayArg} -- YOUR-TOOL`,
    ...agentFileHint(),
    '',
  ].join('\n');
}

// The one-file agent, where a checkout of this repository builds it next to the relay.
const AGENT_FILE = fileURLToPath(new URL('../../agent/dist/porthole-agent.mjs', import.meta.url));

function agentCommand(): string {
  return existsSync(AGENT_FILE) ? 'node porthole-agent.mjs' : 'porthole-agent';
}

function agentFileHint(): string[] {
  return existsSync(AGENT_FILE)
    ? [
        `(porthole-agent.mjs needs only Node.js 20+: copy or mount ${AGENT_FILE} into the container)`,
      ]
    : [];
}

async function serve(opts: ServeOptions): Promise<void> {
  const tls = loadTls(opts.tlsCert, opts.tlsKey);
  const plan = planListen(opts.host, tls !== undefined, opts.insecure);
  const mirrorHosts = planMirrors(
    opts.mirrorHost.length > 0 ? opts.mirrorHost : [...DEFAULT_MIRROR_HOSTS],
  );
  const logger = createLogger(opts.logLevel);

  for (const host of plan.privateHosts) logger.warn({ host }, messages.privateHost(host));

  const holdMs = parseHold(opts.hold);
  const relay = await startRelay({
    hosts: plan.hosts,
    port: opts.port,
    keyFile: opts.keyFile,
    mirrorHosts,
    logger,
    holdMs,
    openBrowser: opts.open,
    watchBridges: opts.host.length === 0,
    ...(tls === undefined ? {} : { tls }),
  });

  process.stderr.write(
    banner(relay.urls, relay.key.file, relay.port, tls === undefined ? 'ws' : 'wss') + '\n',
  );

  let stopping = false;
  const stop = () => {
    // A second signal means "now": skip the grace period.
    if (stopping) process.exit(0);

    stopping = true;
    relay.close(SHUTDOWN_GRACE_MS).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };

  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function token(
  opts: { name: string; ttl: string; keyFile: string },
  command: Command,
): Promise<void> {
  const ttlMs = parseTtl(opts.ttl);
  const name = checkAgentName(opts.name);
  // A key file named by hand that is not there is most likely a typo: a new key there would
  // sign a token that no relay accepts. Only the default one is created, so that a token can
  // be minted before the relay's first start.
  const named =
    command.getOptionValueSource('keyFile') !== 'default' && opts.keyFile !== defaultKeyFile();
  const key = await loadOrCreateRelayKey(opts.keyFile, { create: !named });

  const token = await mintAgentToken({ privateKey: key.privateKey, name, ttlMs });

  process.stdout.write(`${token}\n`);
}

const program = new Command('porthole-relay')
  .description(
    'Carries browser callbacks from this machine into containers: agents in the containers ' +
      "dial this relay, and what arrives on a container's mirrored port here reaches that container.",
  )
  .version(RELAY_SOFTWARE, '-v, --version')
  // `token --key-file F` must reach the token command, not the relay's own --key-file.
  .enablePositionalOptions()
  .addOption(
    env(
      new Option(
        '--host <addr>',
        'address to listen on for agents and the API; repeatable (default: 127.0.0.1 and the local container bridges such as docker0, also those that appear later)',
      ).argParser(collect),
      'HOST',
    ),
  )
  .addOption(
    env(
      new Option('--port <port>', 'port for agents, /health and /api/agents')
        .default(DEFAULT_RELAY_PORT)
        .argParser((v) => parsePort(v)),
      'PORT',
    ),
  )
  .addOption(keyFileOption())
  .addOption(
    env(
      new Option(
        '--mirror-host <addr>',
        `loopback address mirrored ports bind; repeatable (default: ${DEFAULT_MIRROR_HOSTS.join(' and ')})`,
      ).argParser(collect),
      'MIRROR_HOST',
    ),
  )
  .addOption(
    new Option(
      '--no-open',
      "print the pages containers ask to open, but don't start a browser (env: PORTHOLE_NO_OPEN=1)",
    ),
  )
  .addOption(
    env(
      new Option(
        '--hold <duration>',
        'how long a request waits for a reconnecting container, up to 15m',
      ).default('30s'),
      'HOLD',
    ),
  )
  .addOption(
    env(
      new Option('--tls-cert <file>', 'serve agents over TLS (wss://) with this certificate'),
      'TLS_CERT',
    ),
  )
  .addOption(env(new Option('--tls-key <file>', 'private key of --tls-cert'), 'TLS_KEY'))
  .addOption(
    new Option('--insecure', 'allow a public --host without TLS (env: PORTHOLE_INSECURE=1)'),
  )
  .addOption(
    env(
      new Option('--log-level <level>', 'log detail').choices(LOG_LEVELS).default('info'),
      'LOG_LEVEL',
    ),
  )
  .hook('preAction', (command) => {
    // commander's env() turns any value on, even 0; these read 0/false/no as off.
    if (command.getOptionValueSource('open') === 'default' && envFlag('PORTHOLE_NO_OPEN')) {
      command.setOptionValueWithSource('open', false, 'env');
    }

    if (command.getOptionValueSource('insecure') === undefined && envFlag('PORTHOLE_INSECURE')) {
      command.setOptionValueWithSource('insecure', true, 'env');
    }
  })
  .action(async (opts: ServeOptions) => {
    await serve({ ...opts, host: opts.host ?? [], mirrorHost: opts.mirrorHost ?? [] });
  });

program
  .command('token')
  .description('print a new agent token (and nothing else) for a container')
  .addOption(
    env(
      new Option('--name <name>', 'the container, as logs and pages will call it').default('agent'),
      'NAME',
    ),
  )
  .addOption(
    env(
      new Option('--ttl <duration>', 'lifetime, 1m or more, e.g. 12h or 30d').default(
        DEFAULT_TOKEN_TTL,
      ),
      'TTL',
    ),
  )
  .addOption(
    keyFileOption("the relay's private key: one given here must exist; the default is created"),
  )
  .action(token);

program.parseAsync().catch(fail);
