import { readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  type AgentBundle,
  bundleAgentInto,
  foreignModules,
  nodeModulesAbove,
  OPTIONAL_MODULES,
} from '../helpers/agent-bundle.js';
import { AuthServer } from '../helpers/auth-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { OPEN_PROMPT } from '../helpers/login-pages.js';
import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import { portsOf } from '../helpers/relay-api.js';
import {
  mintToken,
  type RelayProcess,
  startRelayProcess,
  tempDir,
  waitForMirror,
} from '../helpers/relay.js';

const APP = fileURLToPath(new URL('../fixtures/container-app.mjs', import.meta.url));
const TOOL = fileURLToPath(new URL('../fixtures/oauth-cli.mjs', import.meta.url));
const CONNECTED = /connected to the relay at/;

describe('the one-file agent, copied alone into a directory', () => {
  let dir: string;
  let bundle: AgentBundle;
  let ns: Namespace;
  let relay: RelayProcess;
  let token: string;
  let relayUrl: string;
  let cleanups: (() => unknown)[] = [];
  const startups: number[] = [];

  beforeAll(async () => {
    dir = tempDir('porthole-one-file-');
    bundle = await bundleAgentInto(dir);
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });
    token = await mintToken(relay.keyFile, 'one-file');
    relayUrl = `ws://${ns.hostAddress}:${relay.port}`;
  });

  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    cleanups = [];
  });

  afterAll(async () => {
    await relay?.program.stop();
    ns?.destroy();
    rmSync(dir, { recursive: true, force: true });

    const size = `${bundle.bytes} bytes (${(bundle.bytes / 1024).toFixed(0)} KiB)`;
    const times = startups.map((ms) => `${ms.toFixed(0)} ms`).join(', ');

    console.log(`one-file agent: ${size}; start → "connected to the relay": ${times}`);
  });

  // Runs a program in the namespace from the agent's directory, and stops it after the test.
  function inDir(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Program {
    const program = ns.spawn('env', ['-C', dir, command, ...args], env);

    cleanups.push(() => program.stop());
    return program;
  }

  function agent(args: string[] = []): Program {
    return inDir(process.execPath, ['porthole-agent.mjs', '--relay', relayUrl, ...args], {
      PORTHOLE_TOKEN: token,
    });
  }

  async function connected(program: Program): Promise<void> {
    const started = performance.now();

    await program.waitForLine(CONNECTED);
    startups.push(performance.now() - started);
  }

  it("asks for no module but Node's own", () => {
    expect(readdirSync(dir)).toEqual(['porthole-agent.mjs']);
    expect(nodeModulesAbove(dir)).toBeUndefined();
    expect(foreignModules(bundle.file)).toEqual(OPTIONAL_MODULES);
  });

  it('carries a request to a port it saw open in the container', async () => {
    const app = inDir(process.execPath, [APP, '127.0.0.1', '0']);
    const port = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);
    await connected(agent());
    await waitForMirror(relay.url, port);

    const res = await httpRequest(`http://localhost:${port}/callback?code=abc&state=xyz`);

    expect(res.body.toString()).toBe('container app got GET /callback?code=abc&state=xyz');
  });

  it('carries a mapped port', async () => {
    const app = inDir(process.execPath, [APP, '::1', '0']);
    const port = Number(/listening (\d+)/.exec(await app.waitForLine(/listening/))?.[1]);
    const hostPort = await freePort();

    await connected(agent(['--no-watch', '--map', `${hostPort}:${port}`]));
    await waitForMirror(relay.url, hostPort);

    const res = await httpRequest(`http://127.0.0.1:${hostPort}/mapped`);

    expect(res.body.toString()).toBe('container app got GET /mapped');
  });

  it('writes readable log lines on a terminal', async () => {
    const command = `'${process.execPath}' porthole-agent.mjs --relay ${relayUrl}`;
    const onTerminal = inDir('script', ['-qefc', command, '/dev/null'], { PORTHOLE_TOKEN: token });

    await onTerminal.waitForLine(/INFO\S*: \S*connected to the relay at/);
    expect(onTerminal.output).not.toMatch(/^\{"level"/m);
    // script(1) gives its command two seconds after a SIGTERM; the agent ends on the hang-up
    // that closing the terminal sends.
    await onTerminal.stop('SIGKILL');
  });

  it('hands a page to the running agent with `open`', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const callback = encodeURIComponent(`http://localhost:${port}/callback`);
    const page = `https://login.example/authorize?state=s1&redirect_uri=${callback}`;

    await connected(agent());

    const open = inDir(process.execPath, ['porthole-agent.mjs', 'open', page]);

    expect(await open.exited).toBe(0);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));
    expect(await portsOf(relay.url, 'one-file')).toContainEqual(
      expect.objectContaining({ hostPort: port, status: 'mirrored', sources: ['login'] }),
    );
  });

  it('runs a login under `run --`, its browser stand-ins calling the file itself', async () => {
    const auth = await AuthServer.start();

    cleanups.push(() => auth.close());

    const wrapped = inDir(
      process.execPath,
      [
        'porthole-agent.mjs',
        'run',
        '--relay',
        relayUrl,
        '--',
        'sh',
        '-c',
        'cat "$BROWSER"; exec "$0" "$@"',
        ...[process.execPath, TOOL, '--auth', auth.authorizeUrl, '--launch', 'xdg-open'],
      ],
      { PORTHOLE_TOKEN: token },
    );
    const prompt = await relay.program.waitForLine((line) =>
      line.includes(`Open this page to continue: ${auth.authorizeUrl}`),
    );
    const url = OPEN_PROMPT.exec(prompt)?.[1] ?? '';
    const page = await fetch(url);

    expect(await page.text()).toContain('Login complete');
    expect(await wrapped.exited, wrapped.output).toBe(0);
    expect(wrapped.output).toContain(`'${bundle.file}' open "$@"`);
    expect(wrapped.output).toMatch(/^got code=\S+ state=\S+$/m);
  });
});
