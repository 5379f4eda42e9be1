import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { AGENT_CLI, Program, RELAY_CLI } from './processes.js';
import { type ListedAgent, listAgents } from './relay-api.js';
import { until } from './until.js';

/** A relay started from its command line, with a key file of its own. */
export interface RelayProcess {
  program: Program;
  port: number;
  keyFile: string;
  url: string;
  wsUrl: string;
}

/** A fresh directory under the system's temp folder. */
export function tempDir(prefix = 'porthole-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts `porthole-relay` and waits until it listens. */
export async function startRelayProcess(
  options: {
    port?: number;
    keyFile?: string;
    args?: string[];
    host?: string;
    /** Environment variables for the relay, on top of the test's own. */
    env?: NodeJS.ProcessEnv;
  } = {},
): Promise<RelayProcess> {
  const keyFile = options.keyFile ?? join(tempDir(), 'relay-key.pem');
  const host = options.host ?? '127.0.0.1';
  const program = new Program(
    process.execPath,
    [
      RELAY_CLI,
      '--host',
      host,
      '--port',
      String(options.port ?? 0),
      '--key-file',
      keyFile,
      '--log-level',
      'debug',
      ...(options.args ?? []),
    ],
    options.env,
  );
  const line = await program.waitForLine(/relay listening on/);
  const listen = String(JSON.parse(line).listen);
  const port = Number(new URL(listen).port);

  return { program, port, keyFile, url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}` };
}

/**
 * Mints a token with the relay's key through `porthole-relay token`. A key file that does not
 * exist yet is created first, as the relay would on its first start: `token` refuses to make
 * one at a path it is given.
 */
export async function mintToken(keyFile: string, name = 'dev', ttl = '1h'): Promise<string> {
  if (!existsSync(keyFile)) writeKeyFile(keyFile);

  const program = new Program(process.execPath, [
    RELAY_CLI,
    'token',
    '--name',
    name,
    '--ttl',
    ttl,
    '--key-file',
    keyFile,
  ]);
  const code = await program.exited;

  if (code !== 0) throw new Error(`token minting failed: ${program.output}`);

  return program.lines.filter((l) => l !== '').join('');
}

/** Starts `porthole-agent` with the given token and extra arguments. */
export function startAgentProcess(
  relayUrl: string,
  token: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Program {
  return new Program(
    process.execPath,
    [AGENT_CLI, '--relay', relayUrl, '--log-level', 'debug', ...args],
    { PORTHOLE_TOKEN: token, ...env },
  );
}

/** Polls the relay's API until `hostPort` is mirrored (or fails after a deadline). */
export async function waitForMirror(
  relayUrl: string,
  hostPort: number,
  timeoutMs = 15_000,
): Promise<void> {
  const mirrored = (agents: ListedAgent[]) =>
    agents.some((a) => a.ports.some((p) => p.hostPort === hostPort && p.status === 'mirrored'));

  await until(
    async () => mirrored(await listAgents(relayUrl).catch(() => [])),
    `host port ${hostPort} to be mirrored`,
    { timeoutMs },
  );
}

/** Writes a fresh Ed25519 relay key where the relay would keep it (0600, in a 0700 folder). */
export function writeKeyFile(keyFile: string): void {
  const { privateKey } = generateKeyPairSync('ed25519');

  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}
