import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { validate } from 'dockerfile-utils';
import { parse as parsePlist } from 'plist';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';

import { bundleAgentInto } from '../helpers/agent-bundle.js';
import { AuthServer } from '../helpers/auth-server.js';
import { Namespace } from '../helpers/netns.js';
import { Program } from '../helpers/processes.js';
import { mintToken, startRelayProcess, tempDir } from '../helpers/relay.js';
import {
  dockerInstructions,
  instructionArgs,
  unitValues,
  waitForFileText,
} from '../helpers/recipe-files.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = join(REPO, 'examples');
const DOCKER = join(EXAMPLES, 'docker');
const DOCKERFILES = ['with-node.Dockerfile', 'without-node.Dockerfile'];
const UNIT = join(EXAMPLES, 'systemd', 'porthole-relay.service');
const PLIST = join(EXAMPLES, 'launchd', 'porthole.relay.plist');
const TOOL = fileURLToPath(new URL('../fixtures/oauth-cli.mjs', import.meta.url));
const LISTENING = /relay listening on (http:\/\/127\.0\.0\.1:\d+)/;

/** The part of a compose service that these tests read. */
interface ComposeService {
  build: { context: string; dockerfile: string };
  extra_hosts: string[];
  environment: Record<string, string>;
  secrets: string[];
  entrypoint: string[];
  command: string[];
}

interface Compose {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
}

function readCompose(): Compose {
  const doc = parseDocument(readFileSync(join(DOCKER, 'docker-compose.yml'), 'utf8'));

  expect(doc.errors, 'YAML errors').toEqual([]);
  expect(doc.warnings, 'YAML warnings').toEqual([]);

  return doc.toJS() as Compose;
}

function dockerfile(name: string) {
  return dockerInstructions(readFileSync(join(DOCKER, name), 'utf8'));
}

/** Where a Dockerfile puts the one-file agent, and the entrypoint it declares. */
function agentRecipe(name: string): { copiedTo: string | undefined; entrypoint: unknown } {
  const instructions = dockerfile(name);
  const copy = instructionArgs(instructions, 'COPY').find(
    (args) => args[0] === 'porthole-agent.mjs',
  );
  const entrypoint = instructions.findLast((i) => i.keyword === 'ENTRYPOINT')?.args ?? 'null';

  return { copiedTo: copy?.[1], entrypoint: JSON.parse(entrypoint) };
}

/** A home folder whose ~/porthole is this repository, as the relay recipes expect. */
function homeWithClone(): string {
  const home = tempDir('porthole-home-');

  symlinkSync(REPO, join(home, 'porthole'));
  mkdirSync(join(home, 'Library', 'Logs'), { recursive: true });
  return home;
}

// Keeps the relays these recipes start off the real port and key, and away from a browser.
function relayTestEnv(home: string): NodeJS.ProcessEnv {
  return {
    HOME: home,
    PORTHOLE_HOST: '127.0.0.1',
    PORTHOLE_PORT: '0',
    PORTHOLE_KEY_FILE: join(home, 'relay-key.pem'),
    PORTHOLE_NO_OPEN: '1',
  };
}

async function expectHealthy(baseUrl: string): Promise<void> {
  const health = (await (await fetch(`${baseUrl}/health`)).json()) as { status: string };

  expect(health.status).toBe('ok');
}

let cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

describe('the Dockerfiles', () => {
  it.each(DOCKERFILES)('%s passes the Dockerfile linter', (name) => {
    expect(validate(readFileSync(join(DOCKER, name), 'utf8'))).toEqual([]);
  });

  it.each(DOCKERFILES)('%s runs the agent it copies, as the entrypoint wrapper', (name) => {
    const { copiedTo, entrypoint } = agentRecipe(name);

    expect(copiedTo).toBe('/usr/local/lib/porthole-agent.mjs');
    expect(entrypoint).toEqual(['node', copiedTo, 'run', '--']);
  });

  it('without-node.Dockerfile takes the node binary from a Node.js 20 stage', () => {
    const instructions = dockerfile('without-node.Dockerfile');
    const stages = instructionArgs(instructions, 'FROM');

    expect(stages[0]).toEqual([expect.stringMatching(/^node:20[-.\w]*$/), 'AS', 'node']);
    expect(stages.at(-1)?.[0]).not.toMatch(/^node:/);
    expect(instructionArgs(instructions, 'COPY')).toContainEqual([
      '--from=node',
      '/usr/local/bin/node',
      '/usr/local/bin/node',
    ]);
  });
});

describe('the compose file', () => {
  it('reaches the relay at host.docker.internal, with the token as a secret file', () => {
    const compose = readCompose();
    const dev = compose.services['dev'] as ComposeService;
    const secret = dev.secrets[0] ?? '';

    expect(dev.extra_hosts).toContain('host.docker.internal:host-gateway');
    expect(new URL(dev.environment['PORTHOLE_RELAY'] ?? '').hostname).toBe('host.docker.internal');
    expect(dev.environment['PORTHOLE_TOKEN_FILE']).toBe(`/run/secrets/${secret}`);
    expect(compose.secrets[secret]?.file).toBe(`./${secret}`);
    expect(readFileSync(join(DOCKER, '.gitignore'), 'utf8').split('\n')).toContain(secret);
  });

  it('builds the Dockerfile whose entrypoint it repeats', () => {
    const dev = readCompose().services['dev'] as ComposeService;

    expect(dev.build.context).toBe('.');
    expect(dev.entrypoint).toEqual(agentRecipe(dev.build.dockerfile).entrypoint);
  });
});

describe('the compose entrypoint and command, run as written in a namespace', () => {
  let root: string;
  let ns: Namespace;
  let auth: AuthServer;

  beforeAll(async () => {
    root = tempDir('porthole-container-');
    ns = Namespace.create();
    auth = await AuthServer.start();
  });

  afterAll(async () => {
    await auth?.close();
    ns?.destroy();
    rmSync(root, { recursive: true, force: true });
  });

  // The container's files live under `root`: a path that names one of them is moved there.
  function inRoot(value: string): string {
    return value.startsWith('/') && existsSync(join(root, value)) ? join(root, value) : value;
  }

  function place(path: string, text: string, mode = 0o644): void {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
    chmodSync(join(root, path), mode);
  }

  // Claude Code opens its login page with the `open` package; this stand-in does the same.
  function placeStandIn(command: string): void {
    const tool = `'${process.execPath}' '${TOOL}' --auth '${auth.authorizeUrl}'`;

    place(
      `/usr/local/bin/${command}`,
      `#!/bin/sh\nexec ${tool} --launch open-package "$@"\n`,
      0o755,
    );
  }

  it('finishes a login of the wrapped command through the relay', async () => {
    const dev = readCompose().services['dev'] as ComposeService;
    const relayAddress = new URL(dev.environment['PORTHOLE_RELAY'] ?? '');
    const argv = [...dev.entrypoint, ...dev.command];

    expect(argv).toEqual(['node', '/usr/local/lib/porthole-agent.mjs', 'run', '--', 'claude']);

    mkdirSync(join(root, '/usr/local/lib'), { recursive: true });
    await bundleAgentInto(join(root, '/usr/local/lib'));
    placeStandIn(dev.command[0] ?? '');
    // What extra_hosts' host-gateway does: the host's end of the container's link.
    ns.setHosts({ [relayAddress.hostname]: ns.hostAddress });

    const relay = await startRelayProcess({
      host: ns.hostAddress,
      port: Number(relayAddress.port),
      args: ['--no-open'],
    });

    cleanups.push(() => relay.program.stop());
    place(dev.environment['PORTHOLE_TOKEN_FILE'] ?? '', await mintToken(relay.keyFile, 'dev'));

    const env = Object.fromEntries(
      Object.entries(dev.environment).map(([name, value]) => [name, inRoot(value)]),
    );
    const container = ns.spawn(argv[0] ?? '', argv.slice(1).map(inRoot), {
      ...env,
      PATH: `${join(root, '/usr/local/bin')}:${process.env['PATH'] ?? ''}`,
    });

    cleanups.push(() => container.stop());

    const prompt = await relay.program.waitForLine((line) =>
      line.includes(`Open this page to continue: ${auth.authorizeUrl}`),
    );
    const page = await fetch(/continue: (\S+)/.exec(prompt)?.[1] ?? '');

    expect(await page.text()).toContain('Login complete');
    expect(await container.exited, container.output).toBe(0);
    expect(container.output).toMatch(/^got code=\S+ state=\S+$/m);
  });
});

describe('the systemd unit', () => {
  it('passes systemd-analyze verify', () => {
    const verify = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });

    expect(
      verify.error,
      "systemd-analyze is missing: install Debian's systemd package " +
        '(node scripts/test-prerequisites.mjs does)',
    ).toBeUndefined();

    // verify exits 0 after warnings such as an unknown key; any output is a finding.
    expect(verify.stdout + verify.stderr).toBe('');
    expect(verify.status).toBe(0);
  });

  it('starts the relay with its ExecStart', async () => {
    const home = homeWithClone();
    const [exec, ...args] = (
      unitValues(readFileSync(UNIT, 'utf8'), 'Service', 'ExecStart')[0] ?? ''
    )
      .replaceAll('%h', home)
      .split(/\s+/);
    const relay = new Program(exec ?? '', args, relayTestEnv(home));

    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    cleanups.push(() => relay.stop());

    const listening = LISTENING.exec(await relay.waitForLine(LISTENING))?.[1] ?? '';

    await expectHealthy(listening);
  });
});

describe('the launchd property list', () => {
  interface LaunchAgent {
    Label: string;
    ProgramArguments: string[];
    EnvironmentVariables: { PATH: string };
    RunAtLoad: boolean;
    KeepAlive: { SuccessfulExit: boolean };
  }

  function readPlist(): LaunchAgent {
    return parsePlist(readFileSync(PLIST, 'utf8')) as unknown as LaunchAgent;
  }

  it('parses as a launch agent that starts at login and again after a failure', () => {
    const agent = readPlist();

    expect(agent.Label).toBe('porthole.relay');
    expect(PLIST.endsWith(`/${agent.Label}.plist`)).toBe(true);
    expect(agent.RunAtLoad).toBe(true);
    expect(agent.KeepAlive).toEqual({ SuccessfulExit: false });
    expect(agent.EnvironmentVariables.PATH.split(':')).toContain('/opt/homebrew/bin');
    expect(agent.ProgramArguments.every((arg) => typeof arg === 'string')).toBe(true);
  });

  it('starts the relay with its ProgramArguments, logging to ~/Library/Logs', async () => {
    const agent = readPlist();
    const home = homeWithClone();
    const [program, ...args] = agent.ProgramArguments;
    const relay = new Program(program ?? '', args, {
      ...relayTestEnv(home),
      PATH: agent.EnvironmentVariables.PATH,
    });

    cleanups.push(() => rmSync(home, { recursive: true, force: true }));
    cleanups.push(() => relay.stop());

    const log = await waitForFileText(join(home, 'Library/Logs/porthole-relay.log'), LISTENING);

    await expectHealthy(LISTENING.exec(log)?.[1] ?? '');
  });
});
