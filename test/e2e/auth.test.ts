import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import {
  encodeOpen,
  mintAgentToken,
  publicJwk,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
} from '@porthole/shared';
import { SignJWT } from 'jose';
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
    const key = createPrivateKey(readFileSync(relay.keyFile));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA' })
      .setSubject('dev')
      .setAudience(TOKEN_AUDIENCE)
      .setIssuer(TOKEN_ISSUER)
      .setIssuedAt(now - 7200)
      .setExpirationTime(now - 3600)
      .setJti('old')
      .sign(key);

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

  it('stops an agent whose token the relay refuses, saying what to do', async () => {
    const foreign = await mintAgentToken({
      privateKey: generateKeyPairSync('ed25519').privateKey,
      name: 'dev',
      ttlMs: 60_000,
    });
    const agent = startAgentProcess(relay.wsUrl, foreign);

    expect(await agent.exited).toBe(1);
    expect(agent.output).toMatch(/not one this relay accepts.*porthole-relay token --name NAME/);
  });

  it('stops an agent with no token, saying how to get one', async () => {
    const agent = startAgentProcess(relay.wsUrl, '');

    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain('no token: mint one');
  });

  it('stops an agent whose token has expired, before dialling', async () => {
    const key = createPrivateKey(readFileSync(relay.keyFile));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ rpk: publicJwk(key) })
      .setProtectedHeader({ alg: 'EdDSA' })
      .setSubject('dev')
      .setAudience(TOKEN_AUDIENCE)
      .setIssuer(TOKEN_ISSUER)
      .setIssuedAt(now - 7200)
      .setExpirationTime(now - 3600)
      .setJti('old')
      .sign(key);
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

  it('cannot prove the relay key, gets no stream, and the agent stops', async () => {
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');

    await relay.program.stop();

    // The impostor answers the handshake with a made-up proof and at once asks for a stream
    // to the container's port.
    const http = createHttpServer();
    const wss = new WebSocketServer({ server: http });
    let helloSeen = false;

    wss.on('connection', (ws) => {
      ws.on('message', () => {
        helloSeen = true;
        ws.send(
          JSON.stringify({ type: 'welcome', version: 1, proof: 'AAAA', software: 'impostor' }),
        );
        ws.send(encodeOpen(1, container.port));
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

    const port = (http.address() as AddressInfo).port;
    const agent = startAgentProcess(`ws://127.0.0.1:${port}`, token, [
      '--map',
      `${await freePort()}:${container.port}`,
    ]);

    expect(await agent.exited).toBe(1);
    expect(helloSeen).toBe(true);
    expect(agent.output).toContain('could not prove it is the relay that minted this token');
    expect(container.requests).toEqual([]);
    wss.close();
    http.close();
  });
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
