/**
 * A relay on its default addresses listens on the container bridges it finds at start, and on
 * those that come later: Docker may start after the relay, and Compose makes a bridge of its
 * own when a project first comes up.
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { BRIDGE_SCAN_MS } from '@porthole/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Program, RELAY_CLI } from '../helpers/processes.js';
import { tempDir } from '../helpers/relay.js';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

// Adds a bridge interface with `address` on this machine, the way Docker sets one up, without
// the IPv6 link-local address that would come a second or two later as a change of its own.
function addBridge(name: string, address: string): void {
  ip('link', 'add', name, 'type', 'bridge');
  writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
  ip('addr', 'add', `${address}/24`, 'dev', name);
  ip('link', 'set', name, 'up');
}

// A relay on port 0 with a key of its own, and any further arguments.
function startRelay(...args: string[]): Program {
  return new Program(process.execPath, [
    RELAY_CLI,
    ...args,
    '--port',
    '0',
    '--key-file',
    join(tempDir(), 'relay-key.pem'),
    '--no-open',
  ]);
}

describe('a relay started before the container bridge exists', () => {
  // Named as Docker names a Compose bridge (br- and hex), on an address no other test uses.
  const bridge = `br-ad${randomInt(0, 0xffff).toString(16).padStart(4, '0')}`;
  const address = `10.215.${randomInt(0, 256)}.1`;
  let relay: Program;
  let port: number;

  beforeAll(async () => {
    relay = startRelay();

    const line = await relay.waitForLine(/relay listening on http:\/\/127\.0\.0\.1:/);

    port = Number(new URL(String(JSON.parse(line).listen)).port);
    addBridge(bridge, address);
  });

  afterAll(async () => {
    await relay?.stop();
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  });

  it('listens on it once it appears, with no restart', async () => {
    await relay.waitForLine((line) =>
      line.includes(`relay listening on http://${address}:${port}`),
    );

    const health = await fetch(`http://${address}:${port}/health`);

    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
  });

  it('listens on it without a warning when it is there at start, as on any Docker host', async () => {
    const later = startRelay();

    try {
      await later.waitForLine((line) => line.includes(`relay listening on http://${address}:`));
      expect(later.output).not.toContain('a private network address');
    } finally {
      await later.stop();
    }
  });
});

describe('a relay told where to listen', () => {
  const bridge = `br-ae${randomInt(0, 0xffff).toString(16).padStart(4, '0')}`;
  const address = `10.216.${randomInt(0, 256)}.1`;
  let relay: Program;

  beforeAll(async () => {
    relay = startRelay('--host', '127.0.0.1');
    await relay.waitForLine(/relay listening on/);
    addBridge(bridge, address);
  });

  afterAll(async () => {
    await relay?.stop();
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  });

  it('listens there alone, whatever bridges appear later', async () => {
    // What it would take a scan to find the bridge, and more: with --host no scan runs at all.
    await new Promise((resolve) => setTimeout(resolve, 2.5 * BRIDGE_SCAN_MS));

    expect(relay.output).not.toContain(address);
  });
});
