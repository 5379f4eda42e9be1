import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LOOPBACK_HOST_NAMES } from '@porthole/shared';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { CONSENT_BUTTON, McpOAuthServer } from '../fixtures/mcp-oauth-server.js';
import { NATIVE_CLIENT_ID, OpenIdProvider } from '../fixtures/openid-provider.js';
import { type AgentBundle, bundleAgentInto } from '../helpers/agent-bundle.js';
import {
  gotoLoginPage,
  launchChromium,
  pageReport,
  watchFailedRequests,
} from '../helpers/browser.js';
import { OPEN_PROMPT, promptedUrl, redirectOf, stateOf } from '../helpers/login-pages.js';
import { Namespace } from '../helpers/netns.js';
import { exitOf, Program } from '../helpers/processes.js';
import { mintToken, type RelayProcess, startRelayProcess, tempDir } from '../helpers/relay.js';

// Whole logins of OAuth software that porthole's authors did not write: oidc-provider with
// openid-client, and an MCP server built on the MCP SDK with mcp-remote. Each "container" is a
// network namespace whose tool runs under the one-file agent, copied alone into a directory; the
// relay, the authorization servers and a headless Chromium that signs in run on the host.

const OPENID_CLI = fileURLToPath(new URL('../fixtures/openid-cli.mjs', import.meta.url));
/** The test package: npx finds mcp-remote among its dependencies from here, offline. */
const TEST_PACKAGE = fileURLToPath(new URL('..', import.meta.url));
/**
 * Host names of the servers on the host. The browser resolves them to 127.0.0.1, and each
 * namespace to the host's end of its link, as a container resolves `host.docker.internal`: one
 * URL, the issuer's, is right on both sides.
 */
const IDP_HOST = 'idp.test';
const MCP_HOST = 'mcp.test';
/** What mcp-remote prints once it has exchanged the code and stored the tokens. */
const MCP_REMOTE_AUTHORIZED = /Recursively reconnecting for reason: authentication-needed/;
const STEP_TIMEOUT_MS = 20_000;

/** One network namespace standing in for a container, with what its agent needs. */
interface Container {
  ns: Namespace;
  token: string;
  relayUrl: string;
  /** Its own home directory, where mcp-remote keeps its client registration and tokens. */
  home: string;
}

/** When the browser sent a login's first request, and its callback to the container. */
interface BrowserLogin {
  firstRequestAt: bigint;
  callbackAt: bigint;
}

/**
 * How long a login took until the client held its tokens (ms): from the browser's first
 * request, and from its callback request (porthole's part, with the client's token request).
 */
interface Timing {
  test: string;
  total: number;
  fromCallback: number;
}

let bundle: AgentBundle;
let browser: Browser;
let idp: OpenIdProvider;
let mcp: McpOAuthServer;
let context: BrowserContext;
let cleanups: (() => unknown)[] = [];
let outputs: { label: string; lines: () => string[] }[] = [];
const timings: Timing[] = [];

beforeAll(async () => {
  [bundle, browser, idp, mcp] = await Promise.all([
    bundleAgentInto(tempDir('porthole-acceptance-agent-')),
    launchChromium([`--host-resolver-rules=MAP ${IDP_HOST} 127.0.0.1, MAP ${MCP_HOST} 127.0.0.1`]),
    OpenIdProvider.start(IDP_HOST),
    startMcpServerOnQuietPort(),
  ]);
});

/**
 * mcp-remote listens for its callback on a port derived from the server URL (3335 to 49151),
 * which may fall in the range the kernel hands out to outgoing connections: one of the many
 * that the tests beside this one open could then hold it, and no mirror could bind it. The
 * server is started again until its URL derives a port below that range.
 */
async function startMcpServerOnQuietPort(): Promise<McpOAuthServer> {
  const [firstEphemeral] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);

  for (let attempt = 1; ; attempt += 1) {
    const server = await McpOAuthServer.start(MCP_HOST);

    if (mcpRemoteCallbackPort(server.url) < (firstEphemeral ?? 32768) || attempt === 20) {
      return server;
    }

    await server.close();
  }
}

/** The callback port mcp-remote derives from a server URL (an MD5 of it, in its source). */
function mcpRemoteCallbackPort(serverUrl: string): number {
  const hash = createHash('md5').update(serverUrl).digest('hex');

  return 3335 + (parseInt(hash.slice(0, 4), 16) % 45816);
}

afterAll(async () => {
  await browser?.close();
  await idp?.close();
  await mcp?.close();
  if (bundle !== undefined) rmSync(dirname(bundle.file), { recursive: true, force: true });

  if (timings.length > 0) {
    const ms = (value: number) => `${value.toFixed(0).padStart(6)} ms`;
    const lines = timings.map((t) => `${ms(t.total)} ${ms(t.fromCallback)}  ${t.test}`);

    console.log(
      "browser's first request → client holds its tokens, and from the callback request on:\n" +
        lines.join('\n'),
    );
  }
});

beforeEach(async ({ task, onTestFailed }) => {
  const current: typeof outputs = [];

  outputs = current;
  context = await newBrowserContext();
  // Runs after afterEach has stopped everything, so it reads this test's list. A test that is
  // expected to fail prints nothing while it does.
  if (task.fails !== true) {
    onTestFailed(() => {
      for (const { label, lines } of current) {
        console.log(`--- ${label} (last 80 lines)\n${lines().slice(-80).join('\n')}`);
      }
    });
  }
});

afterEach(async () => {
  const errors: unknown[] = [];

  // Every cleanup runs, even after one fails: a namespace left behind would keep its subnet.
  for (const cleanup of [() => context.close(), ...cleanups.reverse()]) {
    await Promise.resolve()
      .then(cleanup)
      .catch((err: unknown) => errors.push(err));
  }
  cleanups = [];
  if (errors.length > 0) throw errors[0];
});

/** A fresh browser profile, as it were; it accepts the MCP server's self-signed certificate. */
function newBrowserContext(): Promise<BrowserContext> {
  return browser.newContext({ ignoreHTTPSErrors: true });
}

function track(label: string, program: Program): Program {
  outputs.push({ label, lines: () => program.lines });
  cleanups.push(() => program.stop());
  return program;
}

/**
 * `count` namespaces that reach the relay and both servers over their links, a relay on the
 * host for them (it only prints the pages to open: the test opens them in Chromium), and a
 * token for each.
 */
async function setUp(count: number): Promise<{ relay: RelayProcess; containers: Container[] }> {
  const namespaces: Namespace[] = [];

  for (let i = 0; i < count; i += 1) {
    const ns = Namespace.create();

    cleanups.push(() => stopContainer(ns));
    namespaces.push(ns);
    ns.setHosts({ [IDP_HOST]: ns.hostAddress, [MCP_HOST]: ns.hostAddress });
    cleanups.push(await idp.addAddress(ns.hostAddress));
    cleanups.push(await mcp.addAddress(ns.hostAddress));
  }

  const relay = await startRelayProcess({
    args: [...namespaces.flatMap((ns) => ['--host', ns.hostAddress]), '--no-open'],
  });

  track('relay', relay.program);

  const containers = await Promise.all(
    namespaces.map(async (ns) => {
      const home = tempDir('porthole-acceptance-home-');

      cleanups.push(() => rmSync(home, { recursive: true, force: true }));
      return {
        ns,
        token: await mintToken(relay.keyFile, ns.name),
        relayUrl: `ws://${ns.hostAddress}:${relay.port}`,
        home,
      };
    }),
  );

  return { relay, containers };
}

/**
 * Ends whatever still runs in `ns`, as stopping a container does, then removes it. A tool's own
 * children can outlive the agent: on the SIGTERM the agent passes on, npx exits and leaves
 * mcp-remote (which it runs through `sh -c`) behind, and a namespace, unlike a container, has no
 * init whose exit ends them all.
 */
function stopContainer(ns: Namespace): void {
  const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' });

  for (const pid of pids.split('\n').filter((line) => line !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  ns.destroy();
}

async function setUpOne(): Promise<{ relay: RelayProcess; c: Container }> {
  const { relay, containers } = await setUp(1);

  return { relay, c: containers[0] as Container };
}

/**
 * The command line that runs `command` in `c` under `porthole-agent run`, as a container's
 * entrypoint would, from the test package (where npx finds mcp-remote).
 */
function underAgent(c: Container, command: string[]): { command: string; args: string[] } {
  return {
    command: 'ip',
    args: [
      ...['netns', 'exec', c.ns.name, 'env', '-C', TEST_PACKAGE],
      ...[process.execPath, bundle.file, 'run', '--relay', c.relayUrl, '--log-level', 'debug'],
      ...['--', ...command],
    ],
  };
}

function containerEnv(c: Container): Record<string, string> {
  return {
    PORTHOLE_TOKEN: c.token,
    HOME: c.home,
    MCP_REMOTE_CONFIG_DIR: join(c.home, '.mcp-auth'),
    npm_config_update_notifier: 'false',
  };
}

/**
 * Checks that porthole's own log lines, the relay's and the agent's (JSON lines among a tool's
 * output), carry none of `secrets` (codes, states), except the page the relay asks to open,
 * whose state it carries by necessity.
 */
function expectNoSecretsLogged(relay: RelayProcess, agentOutput: string[], secrets: string[]) {
  const agentLines = agentOutput.filter((line) => line.includes('"name":"porthole-agent"'));
  const leaks = [...relay.program.lines, ...agentLines].filter(
    (line) => !OPEN_PROMPT.test(line) && secrets.some((secret) => line.includes(secret)),
  );

  expect(secrets.every((secret) => secret.length >= 16)).toBe(true);
  expect(leaks).toEqual([]);
}

/**
 * Opens `url` in a new page (of this test's browser context, unless told another) and runs
 * `steps` there; on failure says where the page ended up and what it showed. Resolves with the
 * times (monotonic clock) of the page's first request and of its first request to a loopback
 * address: the callback.
 */
async function inBrowser(
  url: string,
  steps: (page: Page) => Promise<void>,
  browserContext = context,
): Promise<BrowserLogin> {
  const page = await browserContext.newPage();
  const requests = watchFailedRequests(page);
  let firstRequestAt: bigint | undefined;
  let callbackAt: bigint | undefined;

  page.on('request', (request) => {
    const at = process.hrtime.bigint();

    firstRequestAt ??= at;
    if (LOOPBACK_HOST_NAMES.has(new URL(request.url()).hostname)) callbackAt ??= at;
  });
  try {
    await gotoLoginPage(page, url, STEP_TIMEOUT_MS);
    await steps(page);
  } catch (err) {
    throw new Error(
      `the login broke in the browser at ${await pageReport(page, requests.failed)}: ` +
        (err as Error).message,
      { cause: err },
    );
  }

  return { firstRequestAt: firstRequestAt ?? 0n, callbackAt: callbackAt ?? 0n };
}

function record(login: BrowserLogin, tokensAt: bigint, label = ''): void {
  timings.push({
    test: `${expect.getState().currentTestName ?? ''}${label}`,
    total: Number(tokensAt - login.firstRequestAt) / 1e6,
    fromCallback: Number(tokensAt - login.callbackAt) / 1e6,
  });
}

/** The lines a stream carries, each with the time it arrived (monotonic clock). */
class LineLog {
  readonly lines: string[] = [];
  readonly #arrivals: bigint[] = [];
  #watchers: { pattern: RegExp; resolve: (index: number) => void }[] = [];

  constructor(stream: Readable | null) {
    let rest = '';

    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');

      rest = parts.pop() ?? '';
      for (const line of parts) this.#add(line);
    });
  }

  /** The first line (past or future) that matches `pattern`, and when it arrived. */
  async waitFor(
    pattern: RegExp,
    timeoutMs = STEP_TIMEOUT_MS,
  ): Promise<{ line: string; at: bigint }> {
    let index = this.lines.findIndex((line) => pattern.test(line));

    if (index === -1) {
      let timer: NodeJS.Timeout | undefined;

      index = await new Promise<number>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        this.#watchers.push({ pattern, resolve });
      }).finally(() => clearTimeout(timer));
    }

    return { line: this.lines[index] ?? '', at: this.#arrivals[index] ?? 0n };
  }

  #add(line: string): void {
    const index = this.lines.push(line) - 1;

    this.#arrivals.push(process.hrtime.bigint());
    this.#watchers = this.#watchers.filter((w) => {
      if (!w.pattern.test(line)) return true;
      w.resolve(index);
      return false;
    });
  }
}

describe('openid-client signing in at oidc-provider from a namespace', () => {
  /**
   * Runs `openid-cli.mjs` under the agent, signs in with oidc-provider's own login and consent
   * forms in Chromium, and checks that the client holds an ID token for the user who signed
   * in. Resolves with the authorization URL and the requests the callback listener received.
   */
  async function login(cliArgs: string[]): Promise<{ url: string; requests: string[] }> {
    const { relay, c } = await setUpOne();
    const user = `user-${randomBytes(4).toString('hex')}`;
    const { command, args } = underAgent(c, [
      ...[process.execPath, OPENID_CLI, '--issuer', idp.issuer, '--client-id', NATIVE_CLIENT_ID],
      ...cliArgs,
    ]);
    const tool = track('agent run + openid-cli', new Program(command, args, containerEnv(c)));
    const url = await promptedUrl(relay);

    expect(new URL(url).origin).toBe(idp.issuer);

    const browserLogin = await inBrowser(url, async (page) => {
      await page.locator('input[name="login"]').fill(user, { timeout: STEP_TIMEOUT_MS });
      await page.locator('input[name="password"]').fill('any password');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click({ timeout: STEP_TIMEOUT_MS });
      await page
        .getByText(`Login complete: signed in as ${user}`)
        .waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    const tokens = /^tokens at=(\d+) sub=(\S+)$/.exec(await tool.waitForLine(/^tokens at=/));

    record(browserLogin, BigInt(tokens?.[1] ?? 0));
    expect(tokens?.[2]).toBe(user);
    expect(idp.grantedSubjects).toContain(user);
    expect(await exitOf(tool)).toBe(0);

    const code = /^received code=(\S+)$/.exec(await tool.waitForLine(/^received code=/))?.[1];

    expectNoSecretsLogged(relay, tool.lines, [code ?? '', stateOf(url)]);

    const requests = tool.lines.flatMap((line) => /^request (.+)$/.exec(line)?.[1] ?? []);

    // Chromium asks for a favicon once the page has loaded; it may reach the tool or not.
    return { url, requests: requests.filter((r) => !r.startsWith('GET /favicon.ico ')) };
  }

  it('signs in with a localhost redirect to a listener on 127.0.0.1', async () => {
    const { url, requests } = await login(['--redirect-host', 'localhost']);
    const { port } = redirectOf(url);

    expect(redirectOf(url).href).toBe(`http://localhost:${port}/callback`);
    expect(requests).toEqual([`GET /callback host=localhost:${port}`]);
  });

  it('signs in with a 127.0.0.1 redirect', async () => {
    const { url, requests } = await login(['--redirect-host', '127.0.0.1']);
    const { port } = redirectOf(url);

    expect(requests).toEqual([`GET /callback host=127.0.0.1:${port}`]);
  });

  it('signs in with a [::1] redirect to a listener on ::1', async () => {
    const { url, requests } = await login(['--redirect-host', '[::1]', '--bind', '::1']);
    const { port } = redirectOf(url);

    expect(requests).toEqual([`GET /callback host=[::1]:${port}`]);
  });

  it('signs in with response_mode=form_post to the root path', async () => {
    const { url, requests } = await login(['--mode', 'form_post', '--path', '/']);
    const { port } = redirectOf(url);

    expect(new URL(url).searchParams.get('response_mode')).toBe('form_post');
    expect(requests).toEqual([`POST / host=localhost:${port}`]);
  });
});

describe('mcp-remote signing in to an MCP server with OAuth from namespaces', () => {
  /** `npx mcp-remote URL` under the agent in one container, driven over stdio by the SDK. */
  interface McpRemote {
    c: Container;
    client: Client;
    stderr: LineLog;
    connected: Promise<void>;
  }

  function startMcpRemote(c: Container): McpRemote {
    const { command, args } = underAgent(c, ['npx', '--no', 'mcp-remote', mcp.url]);
    const env: Record<string, string> = {};

    for (const [name, value] of Object.entries(process.env)) {
      if (value !== undefined) env[name] = value;
    }

    const transport = new StdioClientTransport({
      command,
      args,
      env: { ...env, ...containerEnv(c), NODE_EXTRA_CA_CERTS: mcp.certFile },
      stderr: 'pipe',
    });
    const stderr = new LineLog(transport.stderr as Readable | null);
    const client = new Client({ name: 'porthole-acceptance', version: '1.0.0' });
    // mcp-remote answers `initialize` once it is signed in to the server.
    const connected = client.connect(transport, { timeout: 60_000 });

    connected.catch(() => undefined);
    outputs.push({ label: `agent run + mcp-remote in ${c.ns.name}`, lines: () => stderr.lines });
    cleanups.push(() => client.close());
    return { c, client, stderr, connected };
  }

  /** The client mcp-remote registered for itself, from its own files in the container. */
  function registeredClientId(c: Container): string {
    const root = join(c.home, '.mcp-auth');

    for (const dir of readdirSync(root)) {
      for (const file of readdirSync(join(root, dir))) {
        if (file.endsWith('_client_info.json')) {
          const info = JSON.parse(readFileSync(join(root, dir, file), 'utf8')) as {
            client_id: string;
          };

          return info.client_id;
        }
      }
    }

    throw new Error(`mcp-remote in ${c.ns.name} registered no client`);
  }

  async function derivedPort(session: McpRemote): Promise<number> {
    const { line } = await session.stderr.waitFor(/callback port derived from the server URL/);
    const port = Number(/: (\d+)$/.exec(line)?.[1]);

    // The server was chosen for this port: a new mcp-remote that derives it otherwise shows here.
    expect(port).toBe(mcpRemoteCallbackPort(mcp.url));
    return port;
  }

  /** Approves the login on the server's consent page and sees mcp-remote's own answer. */
  function approve(url: string, browserContext = context): Promise<BrowserLogin> {
    const steps = async (page: Page) => {
      const callback = page.waitForResponse(
        (res) => new URL(res.url()).pathname === '/oauth/callback',
        { timeout: STEP_TIMEOUT_MS },
      );

      await page.getByRole('button', { name: CONSENT_BUTTON }).click({ timeout: STEP_TIMEOUT_MS });

      const res = await callback;

      expect(res.status()).toBe(200);
      expect(await res.text()).toContain('Authorization successful');
    };

    return inBrowser(url, steps, browserContext);
  }

  /** Of the pages the relay asked to open, the one of `session`'s login. */
  function urlFor(session: McpRemote, urls: string[]): string {
    const clientId = registeredClientId(session.c);

    return urls.find((url) => new URL(url).searchParams.get('client_id') === clientId) ?? '';
  }

  /** The pages of both containers' logins, checked to call back on one and the same port. */
  async function twoLogins(relay: RelayProcess, sessions: McpRemote[]): Promise<string[]> {
    const first = await promptedUrl(relay);
    const urls = [first, await promptedUrl(relay, [first])];
    const ports = await Promise.all(sessions.map((session) => derivedPort(session)));

    // One server URL, one derived port: the two callbacks differ only by their state.
    expect(ports[1]).toBe(ports[0]);
    expect(urls.map((url) => redirectOf(url).href)).toEqual([
      `http://localhost:${ports[0]}/oauth/callback`,
      `http://localhost:${ports[0]}/oauth/callback`,
    ]);
    return urls;
  }

  /**
   * Waits for mcp-remote's tokens (noting how long the browser's `login` took, when given), then
   * lists the tools and calls `echo` through it.
   */
  async function useTools(session: McpRemote, login?: BrowserLogin, label = ''): Promise<void> {
    const { at } = await session.stderr.waitFor(MCP_REMOTE_AUTHORIZED);

    if (login !== undefined) record(login, at, label);
    await session.connected;

    const { tools } = await session.client.listTools();

    expect(tools.map((tool) => tool.name)).toEqual(['echo']);

    const text = `hello from ${session.c.ns.name}`;
    const result = await session.client.callTool({ name: 'echo', arguments: { text } });

    // The server names the OAuth client whose token came with the call.
    expect(result.content).toEqual([
      { type: 'text', text },
      { type: 'text', text: `client ${registeredClientId(session.c)}` },
    ]);
  }

  it('signs in through the browser and calls the echo tool over stdio', async () => {
    const { relay, c } = await setUpOne();
    const session = startMcpRemote(c);
    const url = await promptedUrl(relay);

    expect(redirectOf(url).href).toBe(
      `http://localhost:${await derivedPort(session)}/oauth/callback`,
    );
    await useTools(session, await approve(url));

    const login = mcp.logins.find((l) => l.state === stateOf(url));

    expect(login).toEqual({
      code: expect.any(String),
      clientId: registeredClientId(c),
      clientName: 'MCP CLI Proxy',
      redirectUri: redirectOf(url).href,
      state: stateOf(url),
      resource: mcp.url,
    });
    expectNoSecretsLogged(relay, session.stderr.lines, [login?.code ?? '', stateOf(url)]);
  });

  it('signs two containers in to the same server at once, on the same callback port', async () => {
    const { relay, containers } = await setUp(2);
    const sessions = containers.map((c) => startMcpRemote(c));
    const urls = await twoLogins(relay, sessions);
    // A browser context each, so that neither callback can ride on a connection the other one
    // opened (the next test has one browser carry both).
    const contexts = await Promise.all(sessions.map(() => newBrowserContext()));

    cleanups.push(() => Promise.all(contexts.map((c) => c.close())));

    const logins = await Promise.all(
      sessions.map((session, i) => approve(urlFor(session, urls), contexts[i])),
    );

    await Promise.all(
      sessions.map((session, i) => useTools(session, logins[i], ` (${session.c.ns.name})`)),
    );
    expect(new Set(sessions.map((session) => registeredClientId(session.c))).size).toBe(2);

    for (const session of sessions) {
      const state = stateOf(urlFor(session, urls));
      const login = mcp.logins.find((l) => l.state === state);

      expect(login?.clientId).toBe(registeredClientId(session.c));
      expectNoSecretsLogged(relay, session.stderr.lines, [login?.code ?? '', state]);
    }
  });

  // The browser would keep the first callback's connection alive while the first mcp-remote
  // still listens (here held open by a slow token endpoint) and carry the second login's
  // callback on it; the relay closes each callback connection after its answer, so the second
  // callback opens a connection of its own and is routed by its own state.
  it('routes the second callback on a kept-alive browser connection by its own state', async () => {
    const { relay, containers } = await setUp(2);
    const [a, b] = containers.map((c) => startMcpRemote(c)) as [McpRemote, McpRemote];
    const urls = await twoLogins(relay, [a, b]);
    const release = mcp.holdTokens();

    cleanups.push(release);
    await approve(urlFor(a, urls));
    await approve(urlFor(b, urls));
    release();

    for (const session of [a, b]) await session.stderr.waitFor(/Auth code received/, 3_000);
    await Promise.all([useTools(a), useTools(b)]);
  });
});
