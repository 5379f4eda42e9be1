import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

import {
  createNonce,
  encodeOpen,
  mintAgentToken,
  publicJwk,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  verifyRelayProof,
} from '@porthole/shared';
import { type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { freePort } from '../helpers/ports.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

// A token for agent "dev" signed with `key` that expired an hour ago, with `claims` besides.
function expiredToken(key: KeyObject, claims: JWTPayload = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);

  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA' })
    .setSubject('dev')
    .setAudience(TOKEN_AUDIENCE)
    .setIssuer(TOKEN_ISSUER)
    .setIssuedAt(now - 7200)
    .setExpirationTime(now - 3600)
    .setJti('old')
    .sign(key);
}

// Answers a WebSocket upgrade on /agent the way the relay would, and reports the status.
function upgradeStatus(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/agent`, { headers });

    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on('open', () => {
      resolve({ status: 101, body: '' });
      ws.close();
    });
    ws.on('error', (err) => {
      if (!/closed before/.test(err.message)) reject(err);
    });
  });
}

describe('who may connect', () => {
  let relay: RelayProcess;
  let token: string;

  beforeAll(async () => {
    relay = await startRelayProcess();
    token = await mintToken(relay.keyFile, 'dev');
  });

  afterAll(async () => {
    await relay?.program.stop();
  });

  it('upgrades an agent that shows a token minted with its key', async () => {
    expect((await upgradeStatus(relay.wsUrl, { authorization: `Bearer ${token}` })).status).toBe(
      101,
    );
  });

  it('refuses a missing token with 401 and a code only', async () => {
    expect(await upgradeStatus(relay.wsUrl, {})).toEqual({
      status: 401,
      body: '{"error":"PORTHOLE_ERR_TOKEN_MISSING"}',
    });
  });

  it('refuses a token signed by a foreign key with 401', async () => {
    const foreign = await mintAgentToken({
      privateKey: generateKeyPairSync('ed25519').privateKey,
      name: 'dev',
      ttlMs: 60_000,
    });

    expect(await upgradeStatus(relay.wsUrl, { authorization: `Bearer ${foreign}` })).toEqual({
      status: 401,
      body: '{"error":"PORTHOLE_ERR_TOKEN_INVALID"}',
    });
  });

  it('refuses an expired token with 401', async () => {
    const expired = await expiredToken(createPrivateKey(readFileSync(relay.keyFile)));

    expect(await upgradeStatus(relay.wsUrl, { authorization: `Bearer ${expired}` })).toEqual({
      status: 401,
      body: '{"error":"PORTHOLE_ERR_TOKEN_EXPIRED"}',
    });
  });

  it('refuses a WebSocket that a web page opens (Origin set) with 403', async () => {
    const res = await upgradeStatus(relay.wsUrl, {
      authorization: `Bearer ${token}`,
      origin: 'http://evil.example',
    });

    expect(res.status).toBe(403);
  });

  it('stops an agent whose token another relay minted, before sending it, saying what to do', async () => {
    const foreign = await mintAgentToken({
      privateKey: generateKeyPairSync('ed25519').privateKey,
      name: 'dev',
      ttlMs: 60_000,
    });
    const agent = startAgentProcess(relay.wsUrl, foreign);

    expect(await agent.exited).toBe(1);
    expect(agent.output).toMatch(
      /token comes from another relay.*porthole-relay token --name NAME/,
    );
  });

  it('stops an agent with no token, saying how to get one', async () => {
    const agent = startAgentProcess(relay.wsUrl, '');

    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain('no token: mint one');
  });

  it('stops an agent whose token has expired, before dialling', async () => {
    const key = createPrivateKey(readFileSync(relay.keyFile));
    const expired = await expiredToken(key, { rpk: publicJwk(key) });
    const agent = startAgentProcess(relay.wsUrl, expired);

    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain('the token has expired. Mint a new one');
    expect(agent.output).not.toContain('connecting to the relay');
  });
});

describe('a program squatting on the relay port', () => {
  let container: ContainerServer;

  beforeAll(async () => {
    container = await startContainerServer();
  });

  afterAll(async () => {
    await container?.close();
  });

  /** Every request the impostor received, as it came. */
  interface Seen {
    method: string;
    path: string;
    authorization: string | undefined;
    upgrade: string | undefined;
  }

  // A server on the relay's address without the relay's key. `answer` serves plain requests;
  // a WebSocket upgrade is answered with a made-up proof and at once a stream to the
  // container's port, in case an agent ever got that far.
  async function impostor(answer: (path: string) => { status: number; body: string }) {
    const seen: Seen[] = [];
    const http = createHttpServer((req, res) => {
      const { status, body } = answer((req.url ?? '').split('?', 1)[0] as string);

      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    const wss = new WebSocketServer({ server: http });

    http.prependListener('request', (req) => seen.push(seenOf(req)));
    http.prependListener('upgrade', (req) => seen.push(seenOf(req)));
    wss.on('connection', (ws) => {
      ws.on('message', () => {
        ws.send(
          JSON.stringify({ type: 'welcome', version: 1, proof: 'AAAA', software: 'impostor' }),
        );
        ws.send(encodeOpen(1, container.port));
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

    return {
      seen,
      url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`,
      close: () => {
        wss.close();
        http.closeAllConnections();
        http.close();
      },
    };
  }

  function seenOf(req: IncomingMessage): Seen {
    return {
      method: req.method ?? '',
      path: (req.url ?? '').split('?', 1)[0] as string,
      authorization: req.headers.authorization,
      upgrade: req.headers.upgrade,
    };
  }

  it('never sees the token, cannot prove the relay key, and the agent stops', async () => {
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');

    await relay.program.stop();

    const squatter = await impostor(() => ({ status: 200, body: '{"proof":"AAAA"}' }));
    const agent = startAgentProcess(squatter.url, token, [
      '--map',
      `${await freePort()}:${container.port}`,
    ]);

    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain('could not prove it is the relay that minted this token');
    expect(squatter.seen).toEqual([
      { method: 'GET', path: '/agent/proof', authorization: undefined, upgrade: undefined },
    ]);
    expect(agent.output).not.toContain(token);
    expect(container.requests).toEqual([]);
    squatter.close();
  });

  it('gets no token from an agent that it answers with an error, however often it asks', async () => {
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');

    await relay.program.stop();

    const squatter = await impostor(() => ({ status: 404, body: '{}' }));
    const agent = startAgentProcess(squatter.url, token);

    // The agent keeps trying (this may be a proxy in front of a relay still starting), but
    // each try stops at the question that needs no secret.
    let refusals = 0;

    await agent.waitForLine(
      (line) => /HTTP 404 to \/agent\/proof\); trying again/.test(line) && ++refusals === 2,
    );
    expect(squatter.seen.length).toBeGreaterThanOrEqual(2);
    expect(
      squatter.seen.every((s) => s.authorization === undefined && s.upgrade === undefined),
    ).toBe(true);
    await agent.stop();
    squatter.close();
  });
});

describe('the relay key proof asked before the token', () => {
  it('signs a nonce for anyone, as a proof that serves for nothing else', async () => {
    const relay = await startRelayProcess();
    const publicKey = createPublicKey(createPrivateKey(readFileSync(relay.keyFile)));
    const nonce = createNonce();
    const answer = await fetch(`${relay.url}/agent/proof?nonce=${nonce}`);
    const { proof } = (await answer.json()) as { proof: string };

    expect(answer.status).toBe(200);
    expect(verifyRelayProof(publicKey, nonce, proof, 'pre-token')).toBe(true);
    expect(verifyRelayProof(publicKey, nonce, proof, 'handshake')).toBe(false);
    await relay.program.stop();
  });

  it.each(['', 'short', `${'a'.repeat(200)}`, 'not+a/nonce===='])(
    'answers 400 to the nonce %j',
    async (nonce) => {
      const relay = await startRelayProcess();
      const answer = await fetch(`${relay.url}/agent/proof?nonce=${encodeURIComponent(nonce)}`);

      expect([answer.status, await answer.json()]).toEqual([
        400,
        { error: 'PORTHOLE_ERR_HANDSHAKE' },
      ]);
      await relay.program.stop();
    },
  );
});

describe('two agents with one name', () => {
  it('lets the newer connection replace the older one at once', async () => {
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');
    const first = startAgentProcess(relay.wsUrl, token);

    await first.waitForLine(/connected to the relay/);

    const second = startAgentProcess(relay.wsUrl, token);

    await second.waitForLine(/connected to the relay/);
    expect(await first.exited).toBe(1);
    expect(first.output).toContain('another agent connected to the relay with the same name');

    const agents = (await (await fetch(`${relay.url}/api/agents`)).json()) as { agents: unknown[] };

    expect(agents.agents).toHaveLength(1);
    await second.stop();
    await relay.program.stop();
  });

  it('keeps serving the newer agent mapping', async () => {
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');
    const container = await startContainerServer();
    const hostPort = await freePort();
    const first = startAgentProcess(relay.wsUrl, token, ['--map', `${hostPort}:${container.port}`]);

    await waitForMirror(relay.url, hostPort);

    const second = startAgentProcess(relay.wsUrl, token, [
      '--map',
      `${hostPort}:${container.port}`,
    ]);

    await first.exited;
    await waitForMirror(relay.url, hostPort);

    const res = await fetch(`http://127.0.0.1:${hostPort}/hello`);

    expect(await res.text()).toBe('hello from the container');
    await second.stop();
    await relay.program.stop();
    await container.close();
  });
});
