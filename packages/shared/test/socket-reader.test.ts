import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

import {
  bridge,
  INITIAL_STREAM_WINDOW_BYTES,
  MIN_POOLED_PAYLOAD_BYTES,
  SEND_FRAME_PAYLOAD_BYTES,
  SocketReader,
  StreamSession,
  type TunnelStream,
} from '@porthole/shared';
import { afterEach, describe, expect, it } from 'vitest';

import { MemoryTransport } from './memory-transport.js';

const MB = 1024 * 1024;

interface Setup {
  /** The relay's end of the stream. */
  stream: TunnelStream;
  /** What the agent's end carries from the container socket. */
  toRelay: MemoryTransport;
  /** The container's side of the socket that the agent dialled. */
  container: Socket;
}

const servers: Server[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** A relay and an agent session; the agent bridges the stream to a real socket it dials. */
async function setUp(): Promise<Setup> {
  const toAgent = new MemoryTransport();
  const toRelay = new MemoryTransport();
  const relay = new StreamSession({ transport: toAgent, role: 'relay' });
  const accepted = new Promise<TunnelStream>((resolve) => {
    toAgent.peer = new StreamSession({ transport: toRelay, role: 'agent', onStream: resolve });
  });
  const server = createServer({ allowHalfOpen: true });
  const containerSide = once(server, 'connection') as Promise<[Socket]>;

  servers.push(server);
  toRelay.peer = relay;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');

  const stream = relay.open(80);
  const agentStream = await accepted;
  const reader = new SocketReader(agentStream);
  const { port } = server.address() as { port: number };
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, onread: reader.onread });

  await once(socket, 'connect');
  bridge(socket, agentStream, undefined, reader);

  const [container] = await containerSide;

  return { stream, toRelay, container };
}

async function readAll(stream: TunnelStream): Promise<Buffer> {
  const chunks: Buffer[] = [];

  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(stream, 'end');

  return Buffer.concat(chunks);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// Resolves once `read` has not changed for 200 ms.
async function settled(read: () => number): Promise<number> {
  let value = read();

  for (let quiet = 0; quiet < 10;) {
    await new Promise((resolve) => setTimeout(resolve, 20));

    const next = read();

    quiet = next === value ? quiet + 1 : 0;
    value = next;
  }

  return value;
}

describe('SocketReader', () => {
  it("carries a socket's bytes to the peer byte for byte, then its end", async () => {
    const { stream, container } = await setUp();
    const body = randomBytes(5 * MB);
    const received = readAll(stream);

    container.end(body);

    expect(sha256(await received)).toBe(sha256(body));
  });

  it('sends a bulk read as one frame and a small read as a small frame', async () => {
    const { stream, toRelay, container } = await setUp();
    const received = readAll(stream);

    container.write(Buffer.alloc(10, 1));
    await settled(() => toRelay.frames.length);
    container.end(randomBytes(4 * MB));
    await received;

    const sizes = toRelay.dataPayloadSizes();

    expect(sizes[0]).toBe(10);
    expect(Math.max(...sizes)).toBe(SEND_FRAME_PAYLOAD_BYTES);
    expect(sizes.filter((n) => n >= MIN_POOLED_PAYLOAD_BYTES).length).toBeGreaterThan(10);
  });

  it('stops reading at the send window and goes on, END last, as the peer reads', async () => {
    const { stream, container } = await setUp();
    const body = randomBytes(16 * MB);

    container.end(body);

    const held = await settled(() => stream.bytesReceived);

    expect(held).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW_BYTES);
    expect(held).toBeGreaterThan(INITIAL_STREAM_WINDOW_BYTES / 2);
    expect(sha256(await readAll(stream))).toBe(sha256(body));
  });
});
