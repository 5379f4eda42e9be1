import { request } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Namespace } from '../helpers/netns.js';
import { freePort } from '../helpers/ports.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import { listAgents } from '../helpers/relay-api.js';
import {
  mintToken,
  type RelayProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

const APP = fileURLToPath(new URL('../fixtures/container-app.mjs', import.meta.url));
// A listener that stops listening as soon as a request comes in, and holds that request's
// answer open until SIGUSR2: a login's listener closing while the browser's request is carried.
const CLOSING_APP = `
const http = require('node:http');
const held = [];
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('first\\n');
  held.push(res);
  server.close();
  console.log('stopped listening');
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
process.on('SIGUSR2', () => { for (const res of held) res.end('last\\n'); });
`;

// Starts a GET and resolves once the first bytes are in; `body` resolves when it has ended.
function startRequest(
  url: string,
): Promise<{ body: Promise<{ text: string; complete: boolean }> }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let text = '';
      const body = new Promise<{ text: string; complete: boolean }>((done) => {
        res.on('end', () => done({ text, complete: res.complete }));
        res.on('error', () => done({ text, complete: false }));
      });

      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.once('data', () => resolve({ body }));
    })
      .on('error', reject)
      .end();
  });
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');

    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

// The host ports the relay lists for agent `name`; undefined when it does not list the agent.
async function hostPortsOf(relay: RelayProcess, name: string): Promise<number[] | undefined> {
  const agents = await listAgents(relay.url);

  return agents.find((a) => a.name === name)?.ports.map((p) => p.hostPort);
}

describe('the port watcher, which needs no setting in the container', () => {
  let ns: Namespace;
  let relay: RelayProcess;
  let relayUrl: string;
  let running: Program[] = [];

  beforeAll(async () => {
    ns = Namespace.create();
    relay = await startRelayProcess({ args: ['--host', ns.hostAddress, '--no-open'] });
    relayUrl = `ws://${ns.hostAddress}:${relay.port}`;
  });

  afterEach(async () => {
    await Promise.all(running.map((program) => program.stop()));
    running = [];
  });

  afterAll(async () => {
    await relay?.program.stop();
    ns?.destroy();
  });

  function inContainer(args: string[], env: NodeJS.ProcessEnv = {}): Program {
    const program = ns.spawn(process.execPath, args, env);

    running.push(program);
    return program;
  }

  async function agent(name: string, args: string[] = []): Promise<Program> {
    const token = await mintToken(relay.keyFile, name);
    const program = inContainer([AGENT_CLI, '--relay', relayUrl, ...args], {
      PORTHOLE_TOKEN: token,
    });

    await program.waitForLine(/connected to the relay/);
    return program;
  }

  it('stops mirroring a port once it closes in the container, and lets the request in flight finish', async () => {
    const port = await freePort();
    const app = inContainer(['-e', CLOSING_APP, String(port)]);

    await app.waitForLine(/^listening$/);
    await agent('closing');
    await waitForMirror(relay.url, port);

    const inFlight = await startRequest(`http://localhost:${port}/callback?code=c`);

    await app.waitForLine(/^stopped listening$/);
    await relay.program.waitForLine((line) => line.includes(`stopped mirroring port ${port}"`));

    expect(await refused(port)).toBe(true);
    app.child.kill('SIGUSR2');
    expect(await inFlight.body).toEqual({ text: 'first\nlast\n', complete: true });
  });

  it('announces no listening port with --no-watch', async () => {
    const port = await freePort();
    const app = inContainer([APP, '127.0.0.1', String(port)]);

    await app.waitForLine(/listening/);
    await agent('unwatched', ['--no-watch']);

    // The relay takes an agent's messages in order: once it shows this page, it has taken the
    // ports the agent announced on connecting.
    const page = `https://login.example/device?n=${Date.now()}`;
    const open = inContainer([AGENT_CLI, 'open', page]);

    expect(await open.exited).toBe(0);
    await relay.program.waitForLine((line) => line.includes(`Open this page to continue: ${page}`));

    expect(await hostPortsOf(relay, 'unwatched')).toEqual([]);
    expect(await refused(port)).toBe(true);
  });
});
