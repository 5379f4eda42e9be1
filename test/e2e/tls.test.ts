import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  tempDir,
} from '../helpers/relay.js';

/**
 * A throwaway self-signed certificate for localhost and 127.0.0.1, made with the `openssl`
 * command (CI installs it).
 */
function makeCertificate(): { cert: string; key: string } {
  const dir = tempDir('porthole-tls-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');

  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';

    throw new Error(
      missing
        ? 'the TLS tests need the `openssl` command to make a test certificate: install it ' +
            '(Debian: apt-get install openssl)'
        : `openssl could not make a test certificate: ${(err as Error).message}`,
    );
  }

  return { cert, key };
}

function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = '';

      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('a relay serving agents over TLS', () => {
  let cert: string;
  let relay: RelayProcess;
  let container: ContainerServer;
  const agents: Program[] = [];

  beforeAll(async () => {
    const files = makeCertificate();

    cert = files.cert;
    container = await startContainerServer();
    relay = await startRelayProcess({ args: ['--tls-cert', files.cert, '--tls-key', files.key] });
  });

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.stop()));
    await relay?.program.stop();
    await container?.close();
  });

  it('announces an https:// address', async () => {
    expect(await relay.program.waitForLine(/relay listening on/)).toContain(
      `relay listening on https://127.0.0.1:${relay.port}`,
    );
  });

  it('answers GET /health over https', async () => {
    const res = await httpsGet(`https://127.0.0.1:${relay.port}/health`, readFileSync(cert));

    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ok' });
  });

  it('tells agents in its banner to dial wss://', async () => {
    const advice = await relay.program.waitForLine(/porthole-agent(\.mjs)? run --relay/);

    expect(advice).toMatch(/--relay wss:\/\//);
  });

  it('carries a mapped port for an agent that trusts the certificate', async () => {
    const hostPort = await freePort();
    const agent = startAgentProcess(
      `wss://localhost:${relay.port}`,
      await mintToken(relay.keyFile, 'trusting'),
      ['--map', `${hostPort}:${container.port}`],
      { NODE_EXTRA_CA_CERTS: cert },
    );

    agents.push(agent);
    await agent.waitForLine(/connected to the relay at wss:\/\/localhost/);
    await agent.waitForLine(new RegExp(`port ${container.port} is mirrored on the host`));

    const res = await httpRequest(`http://localhost:${hostPort}/hello`);

    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('hello from the container');
  });

  it('keeps an agent that does not trust the certificate retrying, saying why', async () => {
    const agent = startAgentProcess(
      `wss://localhost:${relay.port}`,
      await mintToken(relay.keyFile, 'untrusting'),
    );

    agents.push(agent);

    const first = await agent.waitForLine(/not reachable/);

    expect(first).toMatch(/relay at wss:\/\/localhost:\d+\/agent not reachable \([^)]*CERT/i);
    // A second failed attempt: it retried rather than giving up.
    await agent.waitForLine(
      () => agent.lines.filter((line) => line.includes('not reachable')).length >= 2,
    );
    expect(agent.child.exitCode).toBe(null);
    expect(relay.program.output).not.toContain('container "untrusting" connected');
  });
});
