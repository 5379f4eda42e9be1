import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { openUntilText } from '../helpers/browser.js';
import { setUpBrowserLogins } from '../helpers/browser-logins.js';
import { httpRequest } from '../helpers/http-client.js';
import { OPEN_PROMPT, promptedUrl, stateOf } from '../helpers/login-pages.js';
import { Namespace } from '../helpers/netns.js';
import { AGENT_CLI, exitOf, type Program } from '../helpers/processes.js';
import { listAgents } from '../helpers/relay-api.js';
import {
  mintToken,
  type RelayProcess,
  startRelayProcess,
  tempDir,
  waitForMirror,
} from '../helpers/relay.js';
import { until } from '../helpers/until.js';

const TOOL = fileURLToPath(new URL('../fixtures/oauth-cli.mjs', import.meta.url));
const SUCCESS_TEXT = 'Login complete';
const PRINTED_URL = /Please visit this URL to authorize: (\S+)/;

type Launch = 'browser-env' | 'xdg-open' | 'open-package' | 'print';

/** A watcher figure: from the tool's listen() to the relay listing its port as mirrored. */
interface WatcherFigure {
  test: string;
  port: number;
  ms: number;
  source: string;
}

const logins = setUpBrowserLogins();
const { cleanups, track } = logins;
const figures: WatcherFigure[] = [];

afterAll(() => {
  if (figures.length > 0) {
    const lines = figures.map(
      (f) => `  ${f.ms.toFixed(1).padStart(7)} ms  port ${f.port}  (${f.source})  ${f.test}`,
    );

    console.log(`watcher: listen() → mirror listed by /api/agents\n${lines.join('\n')}`);
  }
});

/** Fresh namespaces (container stand-ins), each on a link subnet of its own. */
function createNamespaces(count: number): Namespace[] {
  const namespaces: Namespace[] = [];

  while (namespaces.length < count) {
    const ns = Namespace.create();

    if (namespaces.some((other) => other.hostAddress === ns.hostAddress)) {
      ns.destroy();
      continue;
    }
    namespaces.push(ns);
    cleanups.push(() => ns.destroy());
  }

  return namespaces;
}

/** A relay on the host that agents in `namespaces` can reach; it only prints URLs. */
async function startRelay(namespaces: Namespace[]): Promise<RelayProcess> {
  const relay = await startRelayProcess({
    args: [...namespaces.flatMap((ns) => ['--host', ns.hostAddress]), '--no-open'],
  });

  track('relay', relay.program);
  return relay;
}

function relayAddress(ns: Namespace, relay: RelayProcess): string {
  return `ws://${ns.hostAddress}:${relay.port}`;
}

/** Runs the OAuth tool inside `ns` under `porthole-agent run`, as a container entrypoint would. */
async function runTool(
  ns: Namespace,
  relay: RelayProcess,
  toolArgs: string[],
  launch: Launch = 'browser-env',
  agentArgs: string[] = [],
): Promise<Program> {
  const token = await mintToken(relay.keyFile, ns.name);

  return track(
    `agent run + tool in ${ns.name}`,
    ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        'run',
        '--relay',
        relayAddress(ns, relay),
        '--log-level',
        'debug',
        ...agentArgs,
        '--',
        process.execPath,
        TOOL,
        '--auth',
        logins.auth.authorizeUrl,
        '--launch',
        launch,
        ...toolArgs,
      ],
      { PORTHOLE_TOKEN: token },
    ),
  );
}

async function printedUrl(tool: Program): Promise<string> {
  return PRINTED_URL.exec(await tool.waitForLine(PRINTED_URL))?.[1] ?? '';
}

/** The port the tool listens on and when (monotonic clock, ns), from its own output. */
async function listening(tool: Program): Promise<{ port: number; at: bigint }> {
  const match = /listening port=(\d+) at=(\d+)/.exec(await tool.waitForLine(/listening port=/));

  return { port: Number(match?.[1]), at: BigInt(match?.[2] ?? 0) };
}

/** Opens `url` in a new page of this test's browser context and waits for the tool's page. */
async function browse(url: string, timeoutMs?: number): Promise<void> {
  const page = await logins.context.newPage();

  await openUntilText(page, url, SUCCESS_TEXT, timeoutMs);
}

/** The tool exited 0 after receiving the very code the authorization server issued to it. */
async function expectCodeDelivered(tool: Program, url: string): Promise<void> {
  const state = stateOf(url);
  const issued = logins.auth.codeFor(state);

  expect(issued, `no code was issued for state ${state}`).toBeDefined();
  expect(await exitOf(tool)).toBe(0);
  expect(tool.output).toContain(`got code=${issued?.code} state=${state}`);
}

/** The requests the tool's callback listener received, as `METHOD PATH`. */
function requestsSeen(tool: Program): string[] {
  return tool.lines.flatMap((line) => /^request (\S+ \S+)$/.exec(line)?.[1] ?? []);
}

async function waitForAgent(relayUrl: string, name: string): Promise<void> {
  await until(
    async () => (await listAgents(relayUrl).catch(() => [])).some((agent) => agent.name === name),
    `agent ${name} to connect`,
  );
}

/**
 * Polls `/api/agents` every 5 ms and notes when each host port is first listed as mirrored
 * (monotonic clock, the same one the tool prints).
 */
class MirrorWatch {
  readonly #seen = new Map<number, { at: bigint; source: string }>();
  readonly #relayUrl: string;
  #stopped = false;
  readonly #polling: Promise<void>;

  constructor(relayUrl: string) {
    this.#relayUrl = relayUrl;
    this.#polling = this.#poll();
    cleanups.push(() => this.stop());
  }

  /** Waits until `port` is listed as mirrored and records the time since `listenedAt`. */
  async record(port: number, listenedAt: bigint, timeoutMs = 10_000): Promise<WatcherFigure> {
    const deadline = Date.now() + timeoutMs;

    while (Date.now() < deadline) {
      const seen = this.#seen.get(port);

      if (seen !== undefined) {
        const figure = {
          test: expect.getState().currentTestName ?? '',
          port,
          ms: Number(seen.at - listenedAt) / 1e6,
          source: seen.source,
        };

        figures.push(figure);
        console.log(
          `watcher: port ${port} listed as mirrored ${figure.ms.toFixed(1)} ms after listen() ` +
            `(source: ${figure.source})`,
        );
        return figure;
      }
      await sleep(5);
    }

    throw new Error(`port ${port} was not listed as mirrored within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#polling;
  }

  async #poll(): Promise<void> {
    while (!this.#stopped) {
      const agents = await listAgents(this.#relayUrl).catch(() => []);
      const at = process.hrtime.bigint();

      for (const port of agents.flatMap((agent) => agent.ports)) {
        if (port.status === 'mirrored' && !this.#seen.has(port.hostPort)) {
          const source = port.sources?.join('+') ?? port.source ?? 'unknown';

          this.#seen.set(port.hostPort, { at, source });
        }
      }
      await sleep(5);
    }
  }
}

/**
 * The whole story for one tool in one namespace: the tool runs under `porthole-agent run`,
 * hands its URL to a browser command, the relay shows it, Chromium on the host follows it.
 */
async function loginThroughRelay(
  toolArgs: string[],
  launch: Launch = 'browser-env',
  agentArgs: string[] = [],
): Promise<{ tool: Program; relay: RelayProcess; url: string }> {
  const [ns] = createNamespaces(1) as [Namespace];
  const relay = await startRelay([ns]);
  const watch = new MirrorWatch(relay.url);
  const tool = await runTool(ns, relay, toolArgs, launch, agentArgs);
  const url = await promptedUrl(relay);
  const { port, at } = await listening(tool);

  await browse(url);
  await expectCodeDelivered(tool, url);
  await watch.record(port, at);
  return { tool, relay, url };
}

/**
 * A gemini-style login in a namespace of its own, mirrored and waiting for its callback. Such a
 * listener ends the login on its first request, so `finish` (the browser's callback and the
 * checks that the tool got its code) succeeds only if nothing else reached the listener first.
 */
async function mirroredGeminiLogin(): Promise<{
  url: string;
  port: number;
  finish: () => Promise<void>;
}> {
  const [ns] = createNamespaces(1) as [Namespace];
  const relay = await startRelay([ns]);
  const tool = await runTool(ns, relay, ['--style', 'gemini']);
  const url = await promptedUrl(relay);
  const { port } = await listening(tool);

  await waitForMirror(relay.url, port);

  const finish = async () => {
    await browse(url);
    await expectCodeDelivered(tool, url);
    expect(requestsSeen(tool)).toEqual(['GET /callback']);
  };

  return { url, port, finish };
}

describe('browser logins of command-line tools inside a network namespace', () => {
  it('carries a login to a random port with a localhost redirect and a listener on 127.0.0.1', async () => {
    const { tool } = await loginThroughRelay(['--bind', '127.0.0.1', '--port', '0']);

    expect(requestsSeen(tool)).toEqual(['GET /callback']);
  });

  it('carries a login to a listener bound to ::1 only', async () => {
    await loginThroughRelay(['--bind', '::1']);
  });

  it('carries a login to a listener bound to all interfaces', async () => {
    await loginThroughRelay(['--bind', '0.0.0.0']);
  });

  it('carries a login whose redirect names 127.0.0.1', async () => {
    const { url } = await loginThroughRelay(['--redirect-host', '127.0.0.1']);

    expect(logins.auth.codeFor(stateOf(url))?.redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
  });

  it('carries a login whose redirect names [::1]', async () => {
    const { url } = await loginThroughRelay(['--bind', '::1', '--redirect-host', '[::1]']);

    expect(logins.auth.codeFor(stateOf(url))?.redirectUri).toMatch(/^http:\/\/\[::1\]:\d+\//);
  });

  it('carries a form_post callback to the root path', async () => {
    const { tool } = await loginThroughRelay(['--mode', 'form_post', '--path', '/']);

    expect(requestsSeen(tool)).toEqual(['POST /']);
  });

  it('carries the codex follow-up redirect to /success on port 1455', async () => {
    const { tool } = await loginThroughRelay([
      '--style',
      'codex',
      '--port',
      '1455',
      '--path',
      '/auth/callback',
    ]);

    expect(requestsSeen(tool)).toEqual(['GET /auth/callback', 'GET /success']);
  });

  it('sends nothing but the callback to a listener that ends the login on its first request', async () => {
    const { tool } = await loginThroughRelay([
      '--style',
      'gemini',
      '--redirect-host',
      '127.0.0.1',
      '--path',
      '/oauth2callback',
    ]);

    expect(requestsSeen(tool)).toEqual(['GET /oauth2callback']);
  });

  it('takes the authorization URL from a tool that runs $BROWSER', async () => {
    // With the port watcher off, only the hand-off of the URL can open the host listener.
    const { tool } = await loginThroughRelay([], 'browser-env', ['--no-watch']);

    expect(tool.output).toMatch(/opened the browser with \S+: exit 0/);
  });

  it('takes the authorization URL from a tool that runs xdg-open found on PATH', async () => {
    // With the port watcher off, only the hand-off of the URL can open the host listener.
    const { tool } = await loginThroughRelay([], 'xdg-open', ['--no-watch']);

    expect(tool.output).toContain('opened the browser with xdg-open: exit 0');
  });

  it('takes the authorization URL from a tool that uses the open package', async () => {
    // With the port watcher off, only the hand-off of the URL can open the host listener.
    const { tool } = await loginThroughRelay([], 'open-package', ['--no-watch']);

    expect(tool.output).toContain('opened the browser with the open package');
  });

  it("carries a login whose redirect is the relay's own /oauth/callback", async () => {
    const [ns] = createNamespaces(1) as [Namespace];
    const relay = await startRelay([ns]);
    const tool = await runTool(ns, relay, [
      '--port',
      String(relay.port),
      '--path',
      '/oauth/callback',
    ]);
    const url = await promptedUrl(relay);

    await browse(url);
    await expectCodeDelivered(tool, url);
    expect(requestsSeen(tool)).toEqual(['GET /oauth/callback']);
  });

  it('carries logins of tools that only print their URL, through the port watcher alone', async () => {
    const [ns] = createNamespaces(1) as [Namespace];
    const relay = await startRelay([ns]);
    const watch = new MirrorWatch(relay.url);

    for (const bind of ['127.0.0.1', '::1', '0.0.0.0']) {
      const tool = await runTool(ns, relay, ['--bind', bind], 'print');
      const url = await printedUrl(tool);
      const { port, at } = await listening(tool);

      // A person needs a few seconds to copy the URL; the watcher must be quicker than that.
      await watch.record(port, at, 2_000);
      await browse(url);
      await expectCodeDelivered(tool, url);
    }

    expect(relay.program.output).not.toMatch(OPEN_PROMPT);
  });

  it('routes two simultaneous logins on port 1455 to their own namespaces by state', async () => {
    const [a, b] = createNamespaces(2) as [Namespace, Namespace];
    const relay = await startRelay([a, b]);
    const args = ['--port', '1455', '--path', '/auth/callback'];
    const toolA = await runTool(a, relay, args);
    const toolB = await runTool(b, relay, args);
    const first = await promptedUrl(relay);
    const second = await promptedUrl(relay, [first]);

    await Promise.all([browse(first), browse(second)]);

    for (const tool of [toolA, toolB]) {
      expect(await exitOf(tool)).toBe(0);

      const got = /got code=(\S+) state=(\S+)/.exec(tool.output);

      expect(got, tool.output).not.toBeNull();
      expect(logins.auth.codeFor(got?.[2] ?? '')?.code).toBe(got?.[1]);
    }
    expect(new Set([first, second].map(stateOf))).toEqual(
      new Set([toolA, toolB].map((tool) => /got code=\S+ state=(\S+)/.exec(tool.output)?.[1])),
    );
  });

  it('delivers a callback held while the agent restarts, exactly once', async () => {
    const [ns] = createNamespaces(1) as [Namespace];
    const relay = await startRelay([ns]);
    const token = await mintToken(relay.keyFile, ns.name);
    const shim = join(tempDir(), 'browser');
    const agentArgs = [AGENT_CLI, '--relay', relayAddress(ns, relay), '--log-level', 'debug'];

    writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${AGENT_CLI}' open "$1"\n`);
    chmodSync(shim, 0o755);

    const firstAgent = track(
      'first agent',
      ns.spawn(process.execPath, agentArgs, { PORTHOLE_TOKEN: token }),
    );

    await waitForAgent(relay.url, ns.name);

    const tool = track(
      'tool',
      ns.spawn(
        process.execPath,
        [TOOL, '--auth', logins.auth.authorizeUrl, '--launch', 'browser-env'],
        {
          BROWSER: shim,
        },
      ),
    );
    const url = await promptedUrl(relay);
    const { port } = await listening(tool);

    await waitForMirror(relay.url, port);
    await firstAgent.stop('SIGTERM');

    const login = browse(url, 45_000);

    await sleep(3_000);
    track('second agent', ns.spawn(process.execPath, agentArgs, { PORTHOLE_TOKEN: token }));
    await login;
    await expectCodeDelivered(tool, url);
    expect(requestsSeen(tool)).toEqual(['GET /callback']);
  });

  it('answers 421 to a request with a foreign Host and forwards nothing to the listener', async () => {
    const { url, port, finish } = await mirroredGeminiLogin();

    const forged = await httpRequest(
      `http://127.0.0.1:${port}/callback?code=forged&state=${stateOf(url)}`,
      { headers: { host: `evil.example:${port}` } },
    );

    expect(forged.status).toBe(421);
    // A gemini-style listener ends the login on its first request, so this login only
    // succeeds if the forged request never reached it.
    await finish();
  });

  it('answers 421 to a foreign Host however the request line is written', async () => {
    const { url, port, finish } = await mirroredGeminiLogin();

    // What a page on a rebinding name can send with fetch: any method token, any URL length.
    const forged = [
      `get /callback?code=forged&state=${stateOf(url)} HTTP/1.1`,
      `GET /callback?code=forged&state=${stateOf(url)}&pad=${'a'.repeat(20_000)} HTTP/1.1`,
    ];

    for (const requestLine of forged) {
      const answer = await rawRequest(port, `${requestLine}\r\nHost: evil.example:${port}\r\n\r\n`);

      expect(answer.split('\r\n', 1)[0]).toBe('HTTP/1.1 421 Misdirected Request');
    }

    await finish();
  });

  it('opens the authorization URL through the open package when started without --no-open', async () => {
    const [ns] = createNamespaces(1) as [Namespace];
    const dir = tempDir();
    const opened = join(dir, 'opened.txt');
    const script = join(dir, 'browser');

    writeFileSync(opened, '');
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${opened}'\n`);
    chmodSync(script, 0o755);

    // Like a user's relay on a desktop: it opens each page itself, here through `script`.
    const relay = await startRelayProcess({
      args: ['--host', ns.hostAddress],
      env: { BROWSER: script },
    });

    track('relay', relay.program);

    const tool = await runTool(ns, relay, []);
    const url = await promptedUrl(relay);
    const deadline = Date.now() + 10_000;

    while (readFileSync(opened, 'utf8') === '' && Date.now() < deadline) await sleep(25);

    expect(readFileSync(opened, 'utf8').split('\n')).toEqual([url, '']);
    await browse(url);
    await expectCodeDelivered(tool, url);
  });
});

// Sends `bytes` as they are to 127.0.0.1:`port` and resolves with everything the server sent
// back before it closed the connection.
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes, 'latin1'));
    let answer = '';

    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
  });
}
