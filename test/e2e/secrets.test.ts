import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import { Program, RELAY_CLI } from '../helpers/processes.js';
import {
  mintToken,
  startAgentProcess,
  startRelayProcess,
  tempDir,
  waitForMirror,
} from '../helpers/relay.js';

describe('the relay key', () => {
  it('is created with mode 0600 in a directory only its owner can enter', async () => {
    const relay = await startRelayProcess();

    expect(statSync(relay.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(relay.keyFile)).mode & 0o077).toBe(0);
    await relay.program.stop();
  });

  it('is refused when other users can read it', async () => {
    const relay = await startRelayProcess();

    await relay.program.stop();
    chmodSync(relay.keyFile, 0o644);

    const again = new Program(process.execPath, [
      RELAY_CLI,
      '--port',
      '0',
      '--key-file',
      relay.keyFile,
    ]);

    expect(await again.exited).toBe(1);
    expect(again.output).toContain(
      `other users can read it (mode 644); run chmod 600 ${relay.keyFile}`,
    );
  });

  it('is reported plainly when it cannot be created, leaving nothing behind', async () => {
    const dir = tempDir();
    const blocker = join(dir, 'not-a-directory');

    writeFileSync(blocker, '');

    const relay = new Program(process.execPath, [
      RELAY_CLI,
      '--port',
      '0',
      '--key-file',
      join(blocker, 'key.pem'),
    ]);

    expect(await relay.exited).toBe(1);
    expect(relay.output).toMatch(
      /porthole-relay: key file .*key\.pem: cannot be (read|created)(: [a-z ]+)? \(E\w+\)/,
    );
    expect(readdirSync(dir)).toEqual(['not-a-directory']);
  });
});

// Lines a program printed that are not blank.
function printed(program: Program): string[] {
  return program.lines.filter((line) => line.trim() !== '');
}

describe('the relay key on a file system that cannot take it', () => {
  const mounts: string[] = [];
  let full: string;
  let readOnly: string;

  // A tmpfs of 16 KiB: four pages, filled up or mounted read-only.
  function mountTmpfs(options: string): string {
    const dir = tempDir();

    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=16k,${options}`, 'tmpfs', dir]);
    mounts.push(dir);

    return dir;
  }

  beforeAll(() => {
    full = mountTmpfs('rw');
    readOnly = mountTmpfs('ro');

    try {
      writeFileSync(join(full, 'filler'), Buffer.alloc(64 * 1024));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    }
  });

  afterAll(() => {
    for (const dir of mounts) execFileSync('umount', [dir]);
  });

  function startRelay(keyFile: string): Program {
    return new Program(process.execPath, [RELAY_CLI, '--port', '0', '--key-file', keyFile]);
  }

  it.each(['relay-key.pem', 'porthole/relay-key.pem'])(
    'stops with one line when the disk is full (%s), leaving nothing behind',
    async (name) => {
      const relay = startRelay(join(full, name));

      expect(await relay.exited).toBe(1);
      expect(printed(relay)).toEqual([
        `porthole-relay: key file ${join(full, name)}: cannot be created: the disk is full (ENOSPC)`,
      ]);
      expect(readdirSync(full)).toEqual(['filler']);
    },
  );

  it.each(['relay-key.pem', 'porthole/relay-key.pem'])(
    'stops with one line when the directory is read-only (%s), leaving nothing behind',
    async (name) => {
      const relay = startRelay(join(readOnly, name));

      expect(await relay.exited).toBe(1);
      expect(printed(relay)).toEqual([
        `porthole-relay: key file ${join(readOnly, name)}: cannot be created: the file system is read-only (EROFS)`,
      ]);
      expect(readdirSync(readOnly)).toEqual([]);
    },
  );
});

describe('porthole-relay token', () => {
  function token(args: string[], env: NodeJS.ProcessEnv = {}): Program {
    return new Program(process.execPath, [RELAY_CLI, 'token', ...args], env);
  }

  // A typo in the path must not mint a token signed by a brand-new key that no relay holds.
  it('refuses a --key-file that does not exist instead of creating a key there', async () => {
    const file = join(tempDir(), 'relay-kye.pem');
    const program = token(['--name', 'dev', '--key-file', file]);

    expect(await program.exited).toBe(1);
    expect(program.stdout.filter((line) => line !== '')).toEqual([]);
    expect(printed(program)).toEqual([
      `porthole-relay: key file ${file}: does not exist: name the key file the relay runs with ` +
        '(a new key would sign tokens that no relay accepts)',
    ]);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(dirname(file))).toEqual([]);
  });

  it('refuses a PORTHOLE_KEY_FILE that does not exist the same way', async () => {
    const file = join(tempDir(), 'missing', 'relay-key.pem');
    const program = token(['--name', 'dev'], { PORTHOLE_KEY_FILE: file });

    expect(await program.exited).toBe(1);
    expect(program.output).toContain(`key file ${file}: does not exist`);
    expect(existsSync(dirname(file))).toBe(false);
  });

  // A user may mint a token before the relay first starts: both then use the default key.
  it('creates the default key file when none is named, and the relay then accepts it', async () => {
    const config = tempDir();
    const program = token(['--name', 'early'], { XDG_CONFIG_HOME: config });

    expect(await program.exited).toBe(0);

    const defaultFile = join(config, 'porthole', 'relay-key.pem');

    expect(statSync(defaultFile).mode & 0o777).toBe(0o600);

    const relay = await startRelayProcess({ keyFile: defaultFile });

    try {
      const agent = startAgentProcess(relay.wsUrl, program.stdout.join(''), ['--no-watch']);

      await agent.waitForLine(/connected to the relay/);
      await agent.stop();
    } finally {
      await relay.program.stop();
    }
  });
});

describe('logs at debug level', () => {
  it('contain no token, query value, header value or body', async () => {
    const server = await startContainerServer();
    const relay = await startRelayProcess();
    const token = await mintToken(relay.keyFile, 'dev');
    const hostPort = await freePort();
    const closedHostPort = await freePort();
    const agent = startAgentProcess(relay.wsUrl, token, [
      '--map',
      `${hostPort}:${server.port}`,
      '--map',
      `${closedHostPort}:${await freePort()}`,
    ]);
    const secrets = [
      'SECRETCODE4711',
      'SECRETSTATE0815',
      'SECRETTOKEN1234',
      'SECRETBODY999',
      'SECRETHEADER42',
      'SECRETCOOKIE7',
    ];

    await waitForMirror(relay.url, hostPort);
    await waitForMirror(relay.url, closedHostPort);

    const query = `?code=${secrets[0]}&state=${secrets[1]}&access_token=${secrets[2]}`;
    const headers = { authorization: `Bearer ${secrets[4]}`, cookie: `sid=${secrets[5]}` };

    await httpRequest(`http://localhost:${hostPort}/callback${query}`, { headers });
    await httpRequest(`http://localhost:${hostPort}/form${query}`, {
      method: 'POST',
      headers,
      body: `code=${secrets[3]}`,
    });
    await httpRequest(`http://localhost:${closedHostPort}/callback${query}`, { headers });
    await httpRequest(`${relay.url}/health${query}`, { headers });
    await httpRequest(`${relay.url}/api/agents${query}`, { headers });
    await httpRequest(`${relay.url}/nowhere${query}`, { headers });
    await fetch(`${relay.url}/agent${query}`, {
      headers: { ...headers, connection: 'upgrade', upgrade: 'websocket' },
    }).catch(() => null);

    await agent.stop();
    await relay.program.stop();
    await server.close();

    const logs = `${relay.program.output}\n${agent.output}`;

    expect(relay.program.records.length).toBeGreaterThan(5);
    expect(agent.records.length).toBeGreaterThan(2);
    for (const secret of [
      ...secrets,
      token,
      token.split('.')[1] ?? token,
      token.split('.')[2] ?? token,
    ]) {
      expect(logs).not.toContain(secret);
    }
  });
});
