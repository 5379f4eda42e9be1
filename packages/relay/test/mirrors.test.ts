import { once } from 'node:events';
import { type AddressInfo, connect, createServer } from 'node:net';

import { describe, expect, it } from 'vitest';

import { MirrorSet } from '../src/mirrors.js';

// A port that was free a moment ago.
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');

  await once(server, 'listening');

  const { port } = server.address() as AddressInfo;

  server.close();
  await once(server, 'close');
  return port;
}

// Whether something accepts connections on 127.0.0.1:`port`.
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');

    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('MirrorSet', () => {
  it('binds a claimed port, and after closeAll binds none, however it is asked', async () => {
    const mirrors = new MirrorSet<string>(['127.0.0.1'], (socket) => socket.destroy());
    const [before, after] = [await freePort(), await freePort()];

    expect(await mirrors.claim('dev', before, before)).toMatchObject({ status: 'mirrored' });
    expect(await listening(before)).toBe(true);

    mirrors.closeAll();

    expect(await mirrors.claim('dev', after, after)).toEqual({
      status: 'failed',
      addresses: [],
      detail: 'the relay is shutting down',
    });
    expect(await listening(after)).toBe(false);
    expect(await listening(before)).toBe(false);
  });

  it('lets go of a port whose binding was under way when the relay began to stop', async () => {
    const mirrors = new MirrorSet<string>(['127.0.0.1'], (socket) => socket.destroy());
    const port = await freePort();
    const claimed = mirrors.claim('dev', port, port);

    mirrors.closeAll();

    expect(await claimed).toMatchObject({ status: 'failed', detail: 'the relay is shutting down' });
    expect(await listening(port)).toBe(false);
  });
});
