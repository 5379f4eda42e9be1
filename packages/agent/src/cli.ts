#!/usr/bin/env node
import { fileURLToPath } from 'node:url';

import {
  DEFAULT_RELAY_URL,
  envFlag,
  ErrorCodes,
  LOG_LEVELS,
  PortholeError,
  tuneGarbageCollector,
  type PortMapping,
} from '@porthole/shared';
import { Command, Option } from 'commander';

import { Agent } from './agent.js';
import { handOff } from './browser-handoff.js';
import { pagesToOpen } from './browser-shim.js';
import { createLogger } from './logger.js';
import { messages } from './messages.js';
import { collectMappings, resolveToken } from './options.js';
import { parsePortRanges } from './port-watcher.js';
import { runWrapped } from './run-command.js';
import { AGENT_SOFTWARE } from './tunnel-client.js';

tuneGarbageCollector();

interface AgentCliOptions {
  relay: string;
  token?: string;
  tokenFile?: string;
  map?: PortMapping[];
  watch: boolean;
  ports: string;
  logLevel: string;
}

const AGENT_CLI = fileURLToPath(import.meta.url);

function fail(err: unknown): never {
  // A PortholeError is meant for the user; anything else is a bug, still told in one line.
  const message = err instanceof PortholeError ? err.message : `unexpected error: ${String(err)}`;

  process.stderr.write(`porthole-agent: ${message}\n`);
  process.exit(1);
}

function env(option: Option, name: string): Option {
  return option.env(`PORTHOLE_${name}`);
}

function withAgentOptions(command: Command): Command {
  return command
    .addOption(
      env(new Option('--relay <url>', 'address of the relay').default(DEFAULT_RELAY_URL), 'RELAY'),
    )
    .addOption(
      env(new Option('--token <token>', 'agent token from "porthole-relay token"'), 'TOKEN'),
    )
    .addOption(
      env(new Option('--token-file <file>', 'read the token from this file'), 'TOKEN_FILE'),
    )
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
      new Option(
        '--no-watch',
        'do not mirror the ports that open in this container (env: PORTHOLE_NO_WATCH=1)',
      ),
    )
    .addOption(
      env(
        new Option(
          '--ports <ranges>',
          'which listening ports to mirror, e.g. 3000,8000-9000',
        ).default('1024-65535'),
        'PORTS',
      ),
    )
    .addOption(
      env(
        new Option('--log-level <level>', 'log detail').choices(LOG_LEVELS).default('info'),
        'LOG_LEVEL',
      ),
    );
}

// commander's env() turns any value on, even 0; this reads 0/false/no as off.
function readEnvFlags(command: Command): void {
  if (command.getOptionValueSource('watch') === 'default' && envFlag('PORTHOLE_NO_WATCH')) {
    command.setOptionValueWithSource('watch', false, 'env');
  }
}

function createAgent(opts: AgentCliOptions): Agent {
  let watchPorts: (port: number) => boolean;

  try {
    watchPorts = parsePortRanges(opts.ports);
  } catch (err) {
    throw new PortholeError(ErrorCodes.INVALID_OPTION, (err as Error).message);
  }

  return new Agent({
    relayUrl: opts.relay,
    token: resolveToken(opts.token, opts.tokenFile),
    mappings: opts.map ?? [],
    watch: opts.watch,
    watchPorts,
    logger: createLogger(opts.logLevel),
  });
}

async function runAgent(opts: AgentCliOptions): Promise<void> {
  const agent = createAgent(opts);
  const stop = () => agent.stop();

  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await agent.run();
}

// The wrapped command is the point of the container: a tunnel that cannot start (no token, a
// refused one) is reported, but the command runs anyway and its status is what the container
// exits with.
async function runCommand(command: string[], opts: AgentCliOptions): Promise<void> {
  const report = (err: unknown) => {
    const message = err instanceof PortholeError ? err.message : String(err);

    process.stderr.write(`porthole-agent: ${message}; running the command without the tunnel\n`);
  };
  let agent: Agent | undefined;

  try {
    agent = createAgent(opts);
  } catch (err) {
    report(err);
  }

  const tunnel = agent?.run().catch(report);

  // The command may open a browser at once: the hand-off socket must be listening by then.
  await agent?.started;

  const status = await runWrapped(command, AGENT_CLI);

  agent?.stop();
  await tunnel;
  process.exit(status);
}

// Answers as a browser does: at once, and 0 once the pages are handed on. With no page among
// the arguments it opened nothing, and says so with status 2, so that a caller that checks
// (Python's and Rust's webbrowser do) prints the link itself or tries another browser.
async function openPages(args: string[]): Promise<void> {
  const pages = pagesToOpen(args);

  if (pages.length === 0) {
    process.stderr.write(`porthole-agent: ${messages.openUsage()}\n`);
    process.exitCode = 2;
    return;
  }

  for (const page of pages) {
    if (!(await handOff(page))) {
      process.stdout.write(`Open this page to continue: ${page}\n`);
    }
  }
}

const program = withAgentOptions(
  new Command('porthole-agent')
    .description(
      'Runs in a container: dials the porthole relay on the host, which then listens for this ' +
        "container's ports on the host's loopback and carries what arrives into this container.",
    )
    .version(AGENT_SOFTWARE, '-v, --version')
    .enablePositionalOptions(),
)
  .hook('preAction', (_program, action) => readEnvFlags(action))
  .action(runAgent);

withAgentOptions(
  program
    .command('run')
    .description(
      'run a command with the tunnel beside it: its browser requests open on the host, its ' +
        'callback ports are mirrored there, and its exit status is returned',
    )
    .argument('<command...>', 'the command and its arguments, after --'),
).action(runCommand);

program
  .command('open')
  .description('open web pages in the browser on the relay side (what BROWSER and xdg-open run)')
  .argument('[url...]', 'http or https URLs; options and other arguments are ignored')
  .allowUnknownOption()
  .action(openPages);

program.parseAsync().catch(fail);
