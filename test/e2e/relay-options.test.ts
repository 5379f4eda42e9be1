import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { dial, freePort } from '../helpers/ports.js';
import { AGENT_CLI, Program, RELAY_CLI } from '../helpers/processes.js';
import { mintToken, tempDir } from '../helpers/relay.js';

// Every relay run gets a key file of its own, so that no test touches ~/.config/porthole.
function keyFile(): string {
  return join(tempDir(), 'relay-key.pem');
}

function relay(args: string[], env: NodeJS.ProcessEnv = {}): Program {
  return new Program(process.execPath, [RELAY_CLI, ...args], env);
}

function agent(args: string[], env: NodeJS.ProcessEnv = {}): Program {
  return new Program(process.execPath, [AGENT_CLI, ...args], env);
}

// Output lines that are not blank.
function printed(program: Program): string[] {
  return program.lines.filter((line) => line.trim() !== '');
}

// A node stack trace line, which a user-facing failure must never show.
const STACK_LINE = /^ {4}at /m;

// Probes 127.0.0.1:port until the program has exited; true if a connection was ever accepted.
async function acceptedWhileRunning(program: Program, port: number): Promise<boolean> {
  let running = true;

  void program.exited.then(() => (running = false));

  while (running) {
    if ((await dial('127.0.0.1', port)) === 'connected') return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }

  return false;
}

// The port from the relay's "relay listening on URL" record.
async function listenPort(program: Program): Promise<number> {
  const line = await program.waitForLine(/relay listening on/);

  return Number(new URL(String(JSON.parse(line).listen)).port);
}

/**
 * The README's Commands block: the long options of each command line ("porthole-relay",
 * "porthole-relay token", "porthole-agent"…), continuation lines included.
 */
function readmeCommands(): Map<string, string[]> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = /## Commands\s+```\n([\s\S]*?)```/.exec(readme)?.[1];

  if (block === undefined) throw new Error('README.md has no Commands code block');

  const commands = new Map<string, Set<string>>();
  let current: Set<string> | undefined;

  for (const line of block.split('\n')) {
    const start = /^(porthole-(?:relay|agent))(?: ([a-z]+)\b)?/.exec(line);

    if (start !== null) {
      const name = start[2] === undefined ? (start[1] ?? '') : `${start[1]} ${start[2]}`;

      current = commands.get(name) ?? new Set();
      commands.set(name, current);
    }

    for (const [option] of (line.split('#', 1)[0] ?? '').matchAll(/--[a-z][a-z-]*/g)) {
      if (current === undefined) throw new Error(`README option outside a command: ${line}`);
      current.add(option);
    }
  }

  return new Map([...commands].map(([name, options]) => [name, [...options].sort()]));
}

/** The subcommands the README gives `program`. */
function readmeSubcommands(commands: Map<string, string[]>, program: string): string[] {
  return [...commands.keys()]
    .filter((name) => name.startsWith(`${program} `))
    .map((name) => name.slice(program.length + 1))
    .sort();
}

/** The long options a commander --help lists (one per entry, at the start of its line). */
function helpOptions(help: string): string[] {
  return [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1] ?? '').sort();
}

/** The subcommands a commander --help lists under "Commands:". */
function helpCommands(help: string): string[] {
  const section = /^Commands:\n((?: {2}.*\n?)*)/m.exec(help)?.[1] ?? '';

  return [...section.matchAll(/^ {2}([a-z]+)/gm)].map((m) => m[1] ?? '').sort();
}

// Options the design names for later releases. Until the README documents one, --help must
// not offer it.
const DESIGNED_OPTIONS = ['--hold', '--no-watch', '--ports'];

async function helpOf(program: Program): Promise<string> {
  expect(await program.exited).toBe(0);

  return program.stdout.join('\n') + '\n';
}

describe('porthole-relay refuses to listen where it should not', () => {
  it('refuses a public --host without TLS, naming --tls-cert/--tls-key and --insecure', async () => {
    const program = relay(['--host', '8.8.8.8', '--port', '0', '--key-file', keyFile()]);

    expect(await program.exited).toBe(1);
    expect(program.output).toMatch(/--host 8\.8\.8\.8/);
    expect(program.output).toMatch(/--tls-cert and --tls-key/);
    expect(program.output).toMatch(/--insecure/);
    expect(program.output).not.toMatch(/relay listening on|relay is up/);
  });

  it('refuses --host 0.0.0.0 without TLS and never listens, not even on loopback', async () => {
    const port = await freePort();
    const program = relay(['--host', '0.0.0.0', '--port', String(port), '--key-file', keyFile()]);
    const accepted = await acceptedWhileRunning(program, port);

    expect(await program.exited).toBe(1);
    expect(accepted).toBe(false);
    expect(program.output).toMatch(/--host 0\.0\.0\.0/);
    expect(program.output).toMatch(/--tls-cert and --tls-key/);
    expect(program.output).toMatch(/--insecure/);
    expect(program.output).not.toMatch(/relay listening on|relay is up/);
  });

  it('does not take PORTHOLE_INSECURE=0 as permission for a public --host', async () => {
    // With the permission wrongly granted the relay would try to bind 8.8.8.8 (which this
    // machine does not have) and fail on that instead of refusing.
    const program = relay(['--host', '8.8.8.8', '--port', '0', '--key-file', keyFile()], {
      PORTHOLE_INSECURE: '0',
    });

    expect(await program.exited).toBe(1);
    expect(program.output).toMatch(/insecure/i);
    expect(program.output).not.toMatch(/EADDRNOTAVAIL|unexpected error|relay listening on/);
  });

  it('refuses a --mirror-host that is not loopback', async () => {
    const program = relay(['--mirror-host', '10.1.2.3', '--port', '0', '--key-file', keyFile()]);

    expect(await program.exited).toBe(1);
    expect(program.output).toMatch(/--mirror-host 10\.1\.2\.3 is not a loopback address/);
    expect(program.output).toMatch(/only ever reachable from this machine/);
    expect(program.output).not.toMatch(/relay listening on/);
  });

  it('refuses --tls-cert without --tls-key', async () => {
    const dir = tempDir();
    const program = relay([
      '--tls-cert',
      join(dir, 'cert.pem'),
      '--port',
      '0',
      '--key-file',
      join(dir, 'key.pem'),
    ]);

    expect(await program.exited).toBe(1);
    expect(program.output).toContain('--tls-cert and --tls-key go together');
  });
});

describe('porthole-relay reads its port', () => {
  it.each(['70000', 'abc'])(
    'refuses --port %s in one line, without a stack trace',
    async (port) => {
      const program = relay(['--port', port, '--key-file', keyFile()]);

      expect(await program.exited).not.toBe(0);
      expect(printed(program)).toHaveLength(1);
      expect(program.output).toMatch(
        new RegExp(`^porthole-relay: --port "${port}" is not a port number`),
      );
      expect(program.output).not.toMatch(STACK_LINE);
    },
  );

  it('exits 1 saying that its port is already in use', async () => {
    const blocker: Server = createServer();

    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));

    const { port } = blocker.address() as { port: number };
    const program = relay(['--host', '127.0.0.1', '--port', String(port), '--key-file', keyFile()]);

    expect(await program.exited).toBe(1);
    blocker.close();
    expect(program.output).toMatch(new RegExp(`in use.*127\\.0\\.0\\.1:${port}`));
    expect(program.output).not.toMatch(STACK_LINE);
    expect(program.output).not.toMatch(/relay listening on/);
  });

  it('listens on PORTHOLE_PORT', async () => {
    const port = await freePort();
    const program = relay(['--host', '127.0.0.1', '--key-file', keyFile()], {
      PORTHOLE_PORT: String(port),
    });

    try {
      expect(await listenPort(program)).toBe(port);
    } finally {
      await program.stop();
    }
  });

  it('listens on --port rather than PORTHOLE_PORT when given both', async () => {
    const fromEnv = await freePort();
    const fromFlag = await freePort();
    const program = relay(
      ['--host', '127.0.0.1', '--port', String(fromFlag), '--key-file', keyFile()],
      { PORTHOLE_PORT: String(fromEnv) },
    );

    try {
      expect(await listenPort(program)).toBe(fromFlag);
    } finally {
      await program.stop();
    }
  });
});

describe('porthole-relay token', () => {
  it('prints exactly one line on stdout: the token, a JWT', async () => {
    const program = relay(['token', '--name', 'dev'], { XDG_CONFIG_HOME: tempDir() });

    expect(await program.exited).toBe(0);
    expect(program.stdout).toHaveLength(1);
    expect(program.stdout[0]).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  });

  it('refuses a --ttl that is not a duration', async () => {
    const program = relay(['token', '--ttl', 'soon'], { XDG_CONFIG_HOME: tempDir() });

    expect(await program.exited).toBe(1);
    expect(program.output).toContain('--ttl "soon" is not a duration');
    expect(program.stdout).toEqual([]);
  });

  it('refuses a --name that is not a valid agent name', async () => {
    const program = relay(['token', '--name', 'bad name!'], { XDG_CONFIG_HOME: tempDir() });

    expect(await program.exited).toBe(1);
    expect(program.output).toContain('agent name "bad name!" must be 1 to 63 letters');
    expect(program.stdout).toEqual([]);
  });
});

describe('--help', () => {
  const readme = readmeCommands();
  const documented = new Set([...readme.values()].flat());
  const notBuilt = DESIGNED_OPTIONS.filter((option) => !documented.has(option));

  // Each --help against the README's Commands block: the same options (plus commander's
  // --help and --version), the same subcommands, and no option the README does not describe.
  const cases: [string, string, string[], string[]][] = [
    ['porthole-relay', RELAY_CLI, [], ['--help', '--version']],
    ['porthole-relay token', RELAY_CLI, ['token'], ['--help']],
    ['porthole-agent', AGENT_CLI, [], ['--help', '--version']],
  ];

  it.each(cases)('of %s lists exactly the README options', async (name, cli, args, builtIn) => {
    const help = await helpOf(new Program(process.execPath, [cli, ...args, '--help']));

    expect(helpOptions(help)).toEqual([...(readme.get(name) ?? []), ...builtIn].sort());
    for (const option of notBuilt) expect(help).not.toContain(option);
  });

  it.each([
    ['porthole-relay', RELAY_CLI],
    ['porthole-agent', AGENT_CLI],
  ])('of %s lists exactly the README subcommands', async (name, cli) => {
    const help = await helpOf(new Program(process.execPath, [cli, '--help']));

    expect(helpCommands(help).filter((command) => command !== 'help')).toEqual(
      readmeSubcommands(readme, name),
    );
  });
});

describe('porthole-agent reads its options', () => {
  it.each(['1:2:3', '0:80'])('refuses --map %s with a message', async (map) => {
    const program = agent(['--map', map, '--token', 'x']);

    expect(await program.exited).not.toBe(0);
    expect(printed(program)).toHaveLength(1);
    expect(program.output).toMatch(new RegExp(`^porthole-agent: --map "?${map}`));
    expect(program.output).not.toMatch(STACK_LINE);
  });

  it('refuses --token together with --token-file', async () => {
    const program = agent(['--token', 'a', '--token-file', 'f']);

    expect(await program.exited).not.toBe(0);
    expect(program.output).toContain('give --token or --token-file, not both');
    expect(program.output).not.toMatch(STACK_LINE);
  });

  // Nothing listens at these addresses: the agent says whom it tried to reach, and retries.
  it('dials PORTHOLE_RELAY', async () => {
    const port = await freePort();
    const program = agent([], {
      PORTHOLE_RELAY: `ws://127.0.0.1:${port}`,
      PORTHOLE_TOKEN: await mintToken(keyFile(), 'dev'),
    });

    try {
      expect(await program.waitForLine(/not reachable/)).toContain(
        `relay at ws://127.0.0.1:${port}/agent not reachable`,
      );
    } finally {
      await program.stop();
    }
  });

  it('dials --relay rather than PORTHOLE_RELAY when given both', async () => {
    const [fromEnv, fromFlag] = [await freePort(), await freePort()];
    const program = agent(['--relay', `ws://127.0.0.1:${fromFlag}`], {
      PORTHOLE_RELAY: `ws://127.0.0.1:${fromEnv}`,
      PORTHOLE_TOKEN: await mintToken(keyFile(), 'dev'),
    });

    try {
      expect(await program.waitForLine(/not reachable/)).toContain(
        `relay at ws://127.0.0.1:${fromFlag}/agent not reachable`,
      );
    } finally {
      await program.stop();
    }
  });
});
