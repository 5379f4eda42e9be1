import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PortWatcher } from '../src/port-watcher.js';

const LISTEN_AND_SAY_PORT =
  "const s = require('node:net').createServer();" +
  "s.listen(0, '127.0.0.1', () => console.log(s.address().port));";

describe('PortWatcher', () => {
  let own: Server;
  let ownPort: number;
  let other: ChildProcess;
  let otherPort: number;

  beforeAll(async () => {
    own = createServer();
    own.listen(0, '127.0.0.1');
    await once(own, 'listening');
    ownPort = (own.address() as AddressInfo).port;

    const child = spawn(process.execPath, ['-e', LISTEN_AND_SAY_PORT], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];

    other = child;
    otherPort = Number(line.toString().trim());
  });

  afterAll(() => {
    own?.close();
    other?.kill();
  });

  it("leaves out its own process's listeners and reports another process's", async () => {
    // Only the two ports of this test count: the machine has listeners of its own.
    const watcher = new PortWatcher(
      (port) => port === ownPort || port === otherPort,
      () => undefined,
    );

    expect(await watcher.refresh()).toEqual([otherPort]);
  });
});
