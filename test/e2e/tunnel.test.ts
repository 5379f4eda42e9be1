import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { downloadSha256, httpRequest, streamUpload } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

const MB = 1024 * 1024;

function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/**
 * How far a process's resident memory may rise while 50 MB pass through it. A stream holds at
 * most one window (1 MiB) in flight; what else RSS gains is garbage. Where a process reads
 * into a new buffer each time (the WebSocket's messages, a browser's upload), V8 frees those
 * buffers only once enough external memory has piled up: a fresh process's first bulk transfer
 * takes its RSS up by 30 to 40 MiB that way, as much for 50 MB as for 200 MB, and the allocator
 * keeps those pages for the next transfer. A relay that held what it carries until the stream
 * ended rose by 60 to 70 MiB here. The bound sits between the two.
 */
const TRANSFER_GROWTH_BOUND = 48 * MB;

/**
 * RSS growth allowed while a transfer is held at the stream window. What left the sender is
 * checked exactly (under 16 MB); resident memory also holds frames spent but not yet collected,
 * which on a busy machine came to 24 MB, so the bound sits well above that and well below the
 * 50 MB that would pile up without flow control.
 */
const PAUSED_GROWTH_BOUND = 36 * MB;

/**
 * Resets the kernel's high-water mark of each process's resident memory (`clear_refs` 5, as
 * root) and returns a reader of how far it rose since: the true peak, however briefly it lasted,
 * with no sampling to miss it.
 */
function peakGrowth(programs: [Program, Program]): { read(): [number, number] } {
  const start = programs.map((program) => {
    writeFileSync(`/proc/${program.child.pid}/clear_refs`, '5');

    return program.memory().rss;
  });
  const grown = (i: 0 | 1) => programs[i].memory().peak - (start[i] ?? 0);

  return { read: () => [grown(0), grown(1)] };
}

// Polls `read` until its value has not changed for 300 ms (10 s at most), and returns it.
async function settled(read: () => number): Promise<number> {
  const deadline = Date.now() + 10_000;
  let value = read();
  let since = Date.now();

  while (Date.now() - since < 300 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));

    const next = read();

    if (next !== value) {
      value = next;
      since = Date.now();
    }
  }

  return value;
}

describe('a mapped port through the real relay and agent', () => {
  let relay: RelayProcess;
  let agent: Program;
  let server: ContainerServer;
  let hostPort: number;
  let closedPort: number;
  let base: string;

  beforeAll(async () => {
    server = await startContainerServer({ downloadBytes: 50 * MB });
    relay = await startRelayProcess();
    hostPort = await freePort();
    closedPort = await freePort();

    const token = await mintToken(relay.keyFile, 'dev');
    const refusedHostPort = await freePort();

    agent = startAgentProcess(relay.wsUrl, token, [
      '--map',
      `${hostPort}:${server.port}`,
      '--map',
      `${refusedHostPort}:${closedPort}`,
    ]);
    await waitForMirror(relay.url, hostPort);
    await waitForMirror(relay.url, refusedHostPort);
    closedPort = refusedHostPort;
    base = `http://localhost:${hostPort}`;
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await server?.close();
  });

  it('carries a request to the container port and its answer back', async () => {
    const res = await httpRequest(`${base}/hello`);

    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello from the container');
  });

  it('lets the kernel queue as many connections on its listeners as it allows', () => {
    // `ss` gives a listening socket's backlog in its Send-Q column. Node's default is 511.
    const allowed = Math.min(4096, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')));
    const backlogs = (port: number) =>
      execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((line) => Number(line.trim().split(/\s+/)[2]));

    expect(backlogs(hostPort)).toEqual([allowed, allowed]);
    expect(backlogs(relay.port)).toEqual([allowed]);
  });

  it('answers on [::1] as well as 127.0.0.1', async () => {
    const v6 = await httpRequest(`http://[::1]:${hostPort}/hello`);
    const v4 = await httpRequest(`http://127.0.0.1:${hostPort}/hello`);

    expect([v6.status, v4.status]).toEqual([200, 200]);
  });

  it('passes a redirect through unchanged', async () => {
    const res = await httpRequest(`${base}/redirect`);

    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/hello');
  });

  // A browser that stops reading must stop the container's sender after about one stream
  // window, not make the relay or the agent hold the other 49 MB. RSS also counts the frames
  // of the first megabytes, spent but not yet collected, hence a bound well above the window
  // and well below the 50 MB that would pile up without flow control.
  it('holds a download at the stream window while the browser does not read', async () => {
    const before = { relay: relay.program.memory().rss, agent: agent.memory().rss };
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request(`${base}/download`, resolve).on('error', reject).end();
    });

    res.pause();

    const sent = await settled(() => server.downloadSent());
    const growth = {
      relay: relay.program.memory().rss - before.relay,
      agent: agent.memory().rss - before.agent,
    };

    console.log(
      `paused download: ${mb(sent)} left the container; RSS growth relay ${mb(growth.relay)}, agent ${mb(growth.agent)}`,
    );
    expect(sent).toBeLessThan(16 * MB);
    expect(growth.relay).toBeLessThan(PAUSED_GROWTH_BOUND);
    expect(growth.agent).toBeLessThan(PAUSED_GROWTH_BOUND);

    // A callback on the same tunnel goes through meanwhile: a stalled stream holds up no other.
    const callback = await httpRequest(`${base}/hello?code=c&state=s`);

    expect(callback.body.toString()).toBe('hello from the container');

    const hash = createHash('sha256');
    res.on('data', (chunk: Buffer) => hash.update(chunk));
    res.resume();
    await new Promise((resolve) => res.on('end', resolve));
    expect(hash.digest('hex')).toBe(server.downloadSha256);
  });

  it('holds an upload at the stream window while the container does not read', async () => {
    const body = randomBytes(50 * MB);
    const before = { relay: relay.program.memory().rss, agent: agent.memory().rss };
    const upload = streamUpload(`${base}/upload?hold`, body);
    const sent = await settled(upload.sent);
    const growth = {
      relay: relay.program.memory().rss - before.relay,
      agent: agent.memory().rss - before.agent,
    };

    console.log(
      `held upload: ${mb(sent)} left the browser; RSS growth relay ${mb(growth.relay)}, agent ${mb(growth.agent)}`,
    );
    expect(sent).toBeLessThan(16 * MB);
    expect(growth.relay).toBeLessThan(PAUSED_GROWTH_BOUND);
    expect(growth.agent).toBeLessThan(PAUSED_GROWTH_BOUND);

    // A callback on the same tunnel goes through meanwhile: a stalled stream holds up no other.
    const callback = await httpRequest(`${base}/hello?code=c&state=s`);

    expect(callback.body.toString()).toBe('hello from the container');

    server.releaseUpload();
    expect(JSON.parse((await upload.response).body.toString())).toEqual({
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  });

  it('serves 200 concurrent requests', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => httpRequest(`${base}/hello?n=${i}`)),
    );

    expect(results.filter((r) => r.status === 200)).toHaveLength(200);
    expect(results.every((r) => r.body.toString() === 'hello from the container')).toBe(true);
  });

  it('carries a form POST body intact', async () => {
    const form = 'code=4%2F0AbCd&state=xyz%20123&extra=%E2%9C%93';
    const res = await httpRequest(`${base}/form`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
    });

    expect(JSON.parse(res.body.toString())).toEqual({
      contentType: 'application/x-www-form-urlencoded',
      body: form,
    });
  });

  it('carries a WebSocket upgrade and its messages both ways', async () => {
    const ws = new WebSocket(`ws://localhost:${hostPort}/socket`);
    const payload = randomBytes(300 * 1024);

    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));

    const echoes = new Promise<Buffer[]>((resolve) => {
      const got: Buffer[] = [];

      ws.on('message', (data: Buffer) => {
        got.push(data);
        if (got.length === 2) resolve(got);
      });
    });

    ws.send('ping through the tunnel');
    ws.send(payload);

    const [text, binary] = await echoes;

    expect(text?.toString()).toBe('ping through the tunnel');
    expect(binary?.equals(payload)).toBe(true);
    ws.close();
  });

  it('streams server-sent events as they happen', async () => {
    const events: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      request(`${base}/events`, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          events.push(chunk);
          // The second event exists only once the first has arrived: nothing buffered the stream.
          if (events.length === 1) void httpRequest(`${base}/events/next`);
        });
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });

    await done;
    expect(events.join('')).toBe('data: first\n\ndata: second\n\n');
  });

  it('answers 502 naming the container and port when nothing listens there', async () => {
    const res = await httpRequest(`http://localhost:${closedPort}/callback?code=secret`);

    expect(res.status).toBe(502);
    expect(res.body.toString()).toContain('container &#34;dev&#34; has nothing listening on port');
    expect(res.body.toString()).not.toContain('secret');
  });
});

// Each transfer gets a relay and an agent of their own: a process that carried a transfer
// before keeps the pages it grew for it, which would hide what this one takes.
describe('50 MB through a relay and an agent that have carried nothing yet', () => {
  let server: ContainerServer;
  let relay: RelayProcess;
  let agent: Program;
  let base: string;

  beforeAll(async () => {
    server = await startContainerServer({ downloadBytes: 50 * MB });
  });

  beforeEach(async () => {
    relay = await startRelayProcess();

    const hostPort = await freePort();

    agent = startAgentProcess(relay.wsUrl, await mintToken(relay.keyFile, 'fresh'), [
      '--no-watch',
      '--map',
      `${hostPort}:${server.port}`,
    ]);
    await waitForMirror(relay.url, hostPort);
    base = `http://localhost:${hostPort}`;
  });

  afterEach(async () => {
    await agent?.stop();
    await relay?.program.stop();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('delivers a 50 MB response byte for byte within bounded memory', async () => {
    const peak = peakGrowth([relay.program, agent]);
    const got = await downloadSha256(`${base}/download`);
    const [relayGrowth, agentGrowth] = peak.read();

    console.log(
      `50 MB download: peak RSS growth relay ${mb(relayGrowth)}, agent ${mb(agentGrowth)}`,
    );
    expect(got).toEqual({ bytes: 50 * MB, sha256: server.downloadSha256 });
    expect(relayGrowth).toBeLessThan(TRANSFER_GROWTH_BOUND);
    expect(agentGrowth).toBeLessThan(TRANSFER_GROWTH_BOUND);
  });

  it('delivers a 50 MB upload byte for byte within bounded memory', async () => {
    const body = randomBytes(50 * MB);
    const peak = peakGrowth([relay.program, agent]);
    const res = await httpRequest(`${base}/upload`, { method: 'POST', body });
    const [relayGrowth, agentGrowth] = peak.read();

    console.log(`50 MB upload: peak RSS growth relay ${mb(relayGrowth)}, agent ${mb(agentGrowth)}`);
    expect(JSON.parse(res.body.toString())).toEqual({
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    expect(relayGrowth).toBeLessThan(TRANSFER_GROWTH_BOUND);
    expect(agentGrowth).toBeLessThan(TRANSFER_GROWTH_BOUND);
  });
});
