import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { type ClientRequest, request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { openUntilText } from '../helpers/browser.js';
import { setUpBrowserLogins } from '../helpers/browser-logins.js';
import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { OPEN_PROMPT, stateOf } from '../helpers/login-pages.js';
import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  tempDir,
  waitForMirror,
} from '../helpers/relay.js';
import { until } from '../helpers/until.js';

const TOOL = fileURLToPath(new URL('../fixtures/oauth-cli.mjs', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

async function readMetrics(relayUrl: string): Promise<{ text: string; families: MetricFamily[] }> {
  const res = await fetch(`${relayUrl}/metrics`);
  const text = await res.text();

  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);

  return { text, families: parsePrometheusTextFormat(text) };
}

/** The value of one sample, 0 when the family has no sample with those labels. */
function sample(families: MetricFamily[], name: string, labels: Record<string, string> = {}) {
  const family = families.find((f) => f.name === name);
  const found = family?.metrics.find((m) =>
    Object.entries(labels).every(([key, value]) => m.labels?.[key] === value),
  );

  return Number(found?.value ?? 0);
}

/** Follows `GET /events` from the side and keeps all it receives, to assert on its text. */
class EventTap {
  text = '';
  readonly #req: ClientRequest;

  constructor(relayUrl: string) {
    this.#req = request(`${relayUrl}/events`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (this.text += chunk));
    });
    this.#req.on('error', () => undefined);
    this.#req.end();
  }

  /** The snapshots received so far, parsed. */
  get snapshots(): { agents: { name: string }[] }[] {
    return [...this.text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1] ?? '{}'));
  }

  close(): void {
    this.#req.destroy();
  }
}

describe('the status page while a login runs in a namespace', () => {
  const logins = setUpBrowserLogins({
    context: { viewport: { width: 1200, height: 900 } },
    lastLines: 60,
  });
  const { cleanups, track } = logins;

  /** A namespace standing in for a container, with a relay on the host that it can reach. */
  async function setUp(): Promise<{ ns: Namespace; relay: RelayProcess; token: string }> {
    const ns = Namespace.create();

    cleanups.push(() => ns.destroy());

    const relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });

    track('relay', relay.program);

    return { ns, relay, token: await mintToken(relay.keyFile, ns.name) };
  }

  /** Starts the agent in `ns`, then the OAuth tool, whose browser command hands its URL over. */
  async function startLogin(ns: Namespace, relay: RelayProcess, token: string): Promise<Program> {
    const relayUrl = `ws://${ns.hostAddress}:${relay.port}`;
    const shim = join(tempDir(), 'browser');

    writeFileSync(shim, `#!/bin/sh\nexec '${process.execPath}' '${AGENT_CLI}' open "$1"\n`);
    chmodSync(shim, 0o755);
    const agent = track(
      'agent',
      ns.spawn(process.execPath, [AGENT_CLI, '--relay', relayUrl, '--log-level', 'debug'], {
        PORTHOLE_TOKEN: token,
      }),
    );

    // The tool opens its browser at once; the agent must be there to take the URL.
    await agent.waitForLine(/connected to the relay/);

    return track(
      'tool',
      ns.spawn(
        process.execPath,
        [TOOL, '--auth', logins.auth.authorizeUrl, '--launch', 'browser-env'],
        {
          BROWSER: shim,
        },
      ),
    );
  }

  /** The pages the relay has shown so far, once there are at least `count`. */
  async function promptedUrls(relay: RelayProcess, count: number): Promise<string[]> {
    const urls = () => relay.program.lines.flatMap((line) => OPEN_PROMPT.exec(line)?.[1] ?? []);

    await until(() => urls().length >= count, `${count} pages shown by the relay`);

    return urls();
  }

  async function toolPort(tool: Program): Promise<number> {
    return Number(/listening port=(\d+)/.exec(await tool.waitForLine(/listening port=/))?.[1]);
  }

  async function openStatusPage(relay: RelayProcess): Promise<Page> {
    const page = await logins.context.newPage();

    await page.goto(`http://127.0.0.1:${relay.port}/`);
    await page.locator('#live.on').waitFor();

    return page;
  }

  it('shows the agent, its port, the waiting login and the delivered callback as they happen', async () => {
    const { ns, relay, token } = await setUp();
    const tap = new EventTap(relay.url);
    const page = await openStatusPage(relay);

    cleanups.push(() => tap.close());
    await page.getByText('No container is connected').waitFor();
    // A mark that a reload would wipe out: everything below must come without one.
    await page.evaluate(() => Object.assign(globalThis, { keptAcrossUpdates: true }));

    const tool = await startLogin(ns, relay, token);
    const agent = page.locator(`[data-agent="${ns.name}"]`);

    await agent.locator('.badge', { hasText: 'connected' }).waitFor();
    // The agent dialled from the container's end of the link.
    expect(/ · from (\S+)$/.exec(await agent.locator('.meta').innerText())?.[1]).toBe(ns.address);

    const port = await toolPort(tool);

    await agent.locator(`[data-port="${port}"]`, { hasText: 'mirrored' }).waitFor();

    const [url = ''] = await promptedUrls(relay, 1);
    const login = page.locator('#logins tbody tr', {
      hasText: new URL(logins.auth.authorizeUrl).host,
    });

    await login
      .filter({ hasText: String(port) })
      .filter({ hasText: '/callback' })
      .waitFor();
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'status-page-login.png'), fullPage: true });

    const sent = Date.now();

    await openUntilText(await logins.context.newPage(), url, 'Login complete');

    const delivered = page
      .locator('#requests tr[data-result="delivered"]', { hasText: 'GET /callback?code&state' })
      .filter({ hasText: '200' });

    await delivered.waitFor();
    await login.waitFor({ state: 'detached' });

    const [time, shownAgent, shownPort, line, status, took] = await delivered
      .locator('td')
      .allInnerTexts();

    expect({ shownAgent, shownPort, line, status }).toEqual({
      shownAgent: ns.name,
      shownPort: String(port),
      line: 'GET /callback?code&state',
      status: '200',
    });
    expect(await clocksBetween(page, sent, Date.now())).toContain(time);
    expect(took).toMatch(/^\d+ ms$|^\d+\.\d s$/);

    expect(await page.evaluate(() => 'keptAcrossUpdates' in globalThis)).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });

    const code = logins.auth.codeFor(stateOf(url))?.code;

    // Without a code the login did not run as it should, and its absence would prove nothing.
    expect(code).toMatch(/^[\w-]{16,}$/);

    const secrets = [
      url,
      token,
      String(code),
      ...[...new URL(url).searchParams.values()].filter((value) => value.length >= 6),
    ];
    const texts = {
      page: await page.content(),
      html: await (await fetch(`${relay.url}/`)).text(),
      events: tap.text,
      metrics: (await readMetrics(relay.url)).text,
    };

    expect(tap.snapshots.some((s) => s.agents.some((a) => a.name === ns.name))).toBe(true);
    for (const [where, text] of Object.entries(texts)) {
      for (const secret of secrets) expect(text, `${where} shows a secret`).not.toContain(secret);
    }
  });

  it('refuses the page, its events, its metrics and the agent list to a caller in a container', async () => {
    const { ns, relay } = await setUp();
    const base = `http://${ns.hostAddress}:${relay.port}`;
    // The relay's own health check answers the same caller: only the status routes refuse it.
    const client = track(
      'container client',
      ns.spawn(process.execPath, [
        '--input-type=module',
        '-e',
        `for (const path of ['/', '/events', '/metrics', '/api/agents', '/health']) {
          const res = await fetch('${base}' + path, { signal: AbortSignal.timeout(5000) });
          const answer = { path, status: res.status, type: res.headers.get('content-type') };
          console.log(JSON.stringify({ ...answer, body: (await res.text()).slice(0, 300) }));
        }`,
      ]),
    );

    expect(await client.exited, client.output).toBe(0);

    const [page, events, metrics, agents, health] = client.stdout.map(
      (line) => JSON.parse(line) as { status: number; type: string; body: string },
    );
    const refusal = {
      status: 403,
      type: 'text/plain; charset=utf-8',
      body:
        "porthole's status page, API and metrics answer only to the machine the relay " +
        `runs on: open http://localhost:${relay.port}/ in a browser there\n`,
    };

    for (const answer of [page, events, metrics, agents]) expect(answer).toMatchObject(refusal);
    expect(health?.status).toBe(200);
    expect((await fetch(`${relay.url}/`)).status).toBe(200);
  });

  it('opens a waiting login page again from its button, and only for the page itself', async () => {
    const { ns, relay, token } = await setUp();
    const tool = await startLogin(ns, relay, token);
    const port = await toolPort(tool);
    const [url] = await promptedUrls(relay, 1);
    const page = await openStatusPage(relay);
    const button = page
      .locator('#logins tbody tr', { hasText: String(port) })
      .getByRole('button', { name: 'Open the page again' });

    await button.waitFor();

    const id = await page.locator('#logins tbody tr').getAttribute('data-login');
    const reopen = `${relay.url}/api/logins/${id}/open`;
    const foreign = await httpRequest(reopen, {
      method: 'POST',
      headers: { origin: 'http://evil.example' },
    });
    const noOrigin = await httpRequest(reopen, { method: 'POST' });
    // From the container's side of the link: the right Host and Origin, but not this machine.
    const remote = track(
      'remote client',
      ns.spawn(process.execPath, [
        '-e',
        `fetch('http://${ns.hostAddress}:${relay.port}/api/logins/${id}/open', ` +
          `{ method: 'POST', headers: { origin: 'http://${ns.hostAddress}:${relay.port}' } })` +
          '.then((r) => console.log(`status ${r.status}`))',
      ]),
    );

    expect(foreign.status).toBe(403);
    expect(noOrigin.status).toBe(403);
    expect(await remote.waitForLine(/^status /)).toBe('status 403');
    expect(await promptedUrls(relay, 1)).toEqual([url]);

    await button.click();
    await page.getByText('Asked the relay again').waitFor();
    expect(await promptedUrls(relay, 2)).toEqual([url, url]);

    // The same button without JavaScript: a plain form post, answered by a way back to the page.
    const plain = await httpRequest(reopen, {
      method: 'POST',
      headers: {
        origin: `http://127.0.0.1:${relay.port}`,
        host: `127.0.0.1:${relay.port}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: '',
    });

    expect(plain.status).toBe(303);
    expect(plain.headers.location).toBe('/');
    expect(await promptedUrls(relay, 3)).toEqual([url, url, url]);
  });
});

describe('the status page, events and metrics of a relay with one mapped port', () => {
  let relay: RelayProcess;
  let agent: Program;
  let server: ContainerServer;
  let squatter: Server;
  let hostPort: number;
  let busyPort: number;
  let token: string;

  beforeAll(async () => {
    server = await startContainerServer();
    relay = await startRelayProcess();
    hostPort = await freePort();
    busyPort = await freePort();
    squatter = createServer().listen(busyPort, '127.0.0.1');
    token = await mintToken(relay.keyFile, 'dev');
    // Not watching: on the host it would find every program's listener, and the counts below
    // would depend on what else runs on this machine.
    agent = startAgentProcess(relay.wsUrl, token, [
      '--no-watch',
      '--map',
      `${hostPort}:${server.port}`,
      '--map',
      `${busyPort}:${server.port}`,
    ]);
    await waitForMirror(relay.url, hostPort);
    await until(async () => {
      const html = await (await fetch(`${relay.url}/`)).text();

      return html.includes(`<tr data-port="${busyPort}">`);
    }, `port ${busyPort} listed`);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await server?.close();
    squatter?.close();
  });

  it('lists the agent and its ports in the page as served, without JavaScript', async () => {
    const res = await fetch(`${relay.url}/`);
    const html = await res.text();
    const row = (port: number) => new RegExp(`<tr data-port="${port}">.*?</tr>`).exec(html)?.[0];

    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(html).toContain('<article class="agent" data-agent="dev">');
    expect(row(hostPort)).toMatch(/mirrored.*map/);
    expect(row(busyPort)).toMatch(/busy.*map/);
  });

  it('counts a delivered request, a wrong Host, a busy port and a refused token', async () => {
    const before = (await readMetrics(relay.url)).families;
    const delivered = await httpRequest(`http://localhost:${hostPort}/hello?who=me`);
    const misdirected = await httpRequest(`http://127.0.0.1:${hostPort}/hello`, {
      headers: { host: `rebound.example:${hostPort}` },
    });

    await refusedAgent(relay.wsUrl);

    const { families } = await readMetrics(relay.url);
    const grew = (name: string, labels?: Record<string, string>) =>
      sample(families, name, labels) - sample(before, name, labels);

    expect([delivered.status, misdirected.status]).toEqual([200, 421]);
    expect(grew('porthole_callbacks_total', { result: 'delivered' })).toBe(1);
    expect(grew('porthole_callbacks_total', { result: 'wrong_host' })).toBe(1);
    expect(grew('porthole_stream_bytes_total', { direction: 'to_container' })).toBeGreaterThan(40);
    expect(grew('porthole_stream_bytes_total', { direction: 'to_browser' })).toBeGreaterThan(
      delivered.body.length,
    );
    expect(families.find((f) => f.name === 'porthole_auth_failures_total')?.metrics).toEqual([
      { labels: { code: expect.stringMatching(/^PORTHOLE_ERR_TOKEN_/) }, value: '1' },
    ]);
    expect(sample(families, 'porthole_mirror_bind_failures_total')).toBe(1);
    expect(sample(families, 'porthole_agents_connected')).toBe(1);
    expect(sample(families, 'porthole_streams_open')).toBe(0);
    expect(Object.fromEntries(families.map((f) => [f.name, f.type]))).toEqual({
      porthole_agents_connected: 'GAUGE',
      porthole_streams_open: 'GAUGE',
      porthole_stream_bytes_total: 'COUNTER',
      porthole_callbacks_total: 'COUNTER',
      porthole_mirror_bind_failures_total: 'COUNTER',
      porthole_auth_failures_total: 'COUNTER',
    });
  });

  it('counts a host port that stays taken once, however often the agent asks for it', async () => {
    const extraPort = await freePort();
    // The same container connecting again asks for its ports again, the taken one included.
    const again = startAgentProcess(relay.wsUrl, token, [
      '--no-watch',
      '--map',
      `${hostPort}:${server.port}`,
      '--map',
      `${busyPort}:${server.port}`,
      '--map',
      `${extraPort}:${server.port}`,
    ]);

    await agent.exited;
    agent = again;
    // The relay answers a mapping message once it has tried every port in it.
    await again.waitForLine((line) =>
      line.includes(`is mirrored on the host at 127.0.0.1:${extraPort}`),
    );

    const { families } = await readMetrics(relay.url);

    expect(sample(families, 'porthole_mirror_bind_failures_total')).toBe(1);
  });

  it('lists a carried request with its status code and parameter names only', async () => {
    const tap = new EventTap(relay.url);

    const listed = /"method":"GET","path":"\/redirect\?code&state","status":302/;

    await httpRequest(`http://localhost:${hostPort}/redirect?code=s3cr3t-c0de&state=st4te-v4lue`);
    await until(() => listed.test(tap.text), 'the request in the event stream');
    tap.close();

    const html = await (await fetch(`${relay.url}/`)).text();

    expect(html).toContain('GET /redirect?code&#38;state');
    for (const text of [tap.text, html]) {
      expect(text).not.toContain('s3cr3t-c0de');
      expect(text).not.toContain('st4te-v4lue');
    }
  });

  it('starts each event stream with a snapshot of the relay', async () => {
    const res = await fetch(`${relay.url}/events`);
    const reader = res.body?.getReader();
    const first = new TextDecoder().decode((await reader?.read())?.value);

    await reader?.cancel();
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(first).toMatch(/^retry: \d+\ndata: \{.*"agents":\[\{"name":"dev"/s);
  });

  it('answers 421 to the page, the events, the metrics, the agent list and the button for another host name', async () => {
    const foreign = { host: `rebound.example:${relay.port}` };
    const answers = await Promise.all([
      httpRequest(`${relay.url}/`, { headers: foreign }),
      httpRequest(`${relay.url}/events`, { headers: foreign }),
      httpRequest(`${relay.url}/metrics`, { headers: foreign }),
      httpRequest(`${relay.url}/api/agents`, { headers: foreign }),
      httpRequest(`${relay.url}/api/logins/any/open`, {
        method: 'POST',
        headers: { ...foreign, origin: `http://${foreign.host}` },
      }),
    ]);

    expect(answers.map((a) => a.status)).toEqual([421, 421, 421, 421, 421]);
    expect((await httpRequest(`${relay.url}/`, { headers: { host: 'localhost' } })).status).toBe(
      200,
    );
  });

  it('serves the page on the relay port only: on a mirrored port, / belongs to the container', async () => {
    const mirrored = await httpRequest(`http://localhost:${hostPort}/`);

    expect(mirrored.status).toBe(404);
    expect(mirrored.body.toString()).toBe('not found');
    expect(server.requests.at(-1)).toBe('GET /');
  });
});

/** The page's clock (HH:MM:SS, as the status page shows times) each second from `from` to `to`. */
function clocksBetween(page: Page, from: number, to: number): Promise<string[]> {
  return page.evaluate(
    ({ start, end }) => {
      const clocks: string[] = [];

      for (let at = start - 1000; at <= end + 1000; at += 1000) {
        clocks.push(new Date(at).toTimeString().slice(0, 8));
      }

      return clocks;
    },
    { start: from, end: to },
  );
}

// An agent with a token the relay did not sign: refused before the upgrade.
function refusedAgent(wsUrl: string): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${wsUrl}/agent`, {
      headers: { authorization: 'Bearer e30.e30.AAAA' },
    });

    ws.on('error', () => resolve());
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve();
    });
  });
}
