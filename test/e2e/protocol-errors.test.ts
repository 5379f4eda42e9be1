import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { CloseCodes, mintAgentToken } from '@porthole/shared';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type ContainerServer, startContainerServer } from '../helpers/container-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { freePort } from '../helpers/ports.js';
import type { Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
  waitForMirror,
} from '../helpers/relay.js';

interface Closed {
  code: number;
  reason: string;
  messages: string[];
}

// Connects as an agent, optionally finishes the handshake, sends `payload`, and reports how
// the relay closed the connection.
async function sendAsAgent(
  url: string,
  token: string,
  payload: Buffer | string,
  options: { handshake?: boolean; version?: number } = {},
): Promise<Closed> {
  const ws = new WebSocket(`${url}/agent`, { headers: { authorization: `Bearer ${token}` } });
  const messages: string[] = [];
  const closed = new Promise<Closed>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), messages }));
  });

  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) messages.push(data.toString());
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));

  if (options.handshake ?? true) {
    const welcome = new Promise((resolve) => ws.once('message', resolve));

    ws.send(
      JSON.stringify({
        type: 'hello',
        version: options.version ?? 1,
        nonce: 'n',
        software: 'test',
      }),
    );
    await welcome;
  }

  ws.send(payload);

  return closed;
}

const END_OF_RUN = JSON.stringify({ type: 'launch-missiles' });

/**
 * Messages an agent must never send after its handshake: frames the agent side may not send
 * (it opens no streams, and the relay opened none here), byte noise, and control messages that
 * are malformed or meant for the other direction. None of them asks the relay to bind a port
 * or open a page, so a run leaves nothing behind but its closed connection. (A cut frame is the
 * exception: it may be the start of one that the next message ends.)
 */
const hostileMessageArb: fc.Arbitrary<Buffer | string> = fc.oneof(
  fc
    .record({
      kind: fc.integer({ min: 0, max: 255 }),
      streamId: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 0xffffffff })),
      length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffffffff })),
      payload: fc.uint8Array({ maxLength: 64 }),
    })
    .map(({ kind, streamId, length, payload }) =>
      frame(kind, streamId, length, Buffer.from(payload)),
    ),
  fc.uint8Array({ minLength: 1, maxLength: 128 }).map((bytes) => Buffer.from(bytes)),
  fc.string({ maxLength: 64 }),
  fc
    .record({
      type: fc.constantFrom('hello', 'welcome', 'mapped', 'launch', '', '__proto__'),
      extra: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
    })
    .map(({ type, extra }) => JSON.stringify({ ...extra, type })),
);

// Like sendAsAgent, with several messages in a row.
async function sendAllAsAgent(url: string, token: string, sent: (Buffer | string)[]) {
  const [first, ...rest] = sent;
  const ws = new WebSocket(`${url}/agent`, { headers: { authorization: `Bearer ${token}` } });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });

  ws.on('error', () => undefined);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));

  const welcome = new Promise((resolve) => ws.once('message', resolve));

  ws.send(JSON.stringify({ type: 'hello', version: 1, nonce: 'n', software: 'fuzz' }));
  await welcome;
  for (const message of [first, ...rest]) {
    if (ws.readyState === WebSocket.OPEN && message !== undefined) ws.send(message);
  }

  // A relay that lets such a message pass keeps the connection open: report that, not a hang.
  const stillOpen = new Promise<{ code: number; reason: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ code: 0, reason: 'still open after 3 s' }), 3_000);

    void closed.then(() => clearTimeout(timer));
  });
  const outcome = await Promise.race([closed, stillOpen]);

  ws.terminate();
  return outcome;
}

function frame(kind: number, streamId: number, length: number, payload = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);

  head.writeUInt8(kind, 0);
  head.writeUInt32BE(streamId, 1);
  head.writeUInt32BE(length, 5);

  return Buffer.concat([head, payload]);
}

describe('a peer that breaks the protocol', () => {
  let relay: RelayProcess;
  let token: string;
  let agent: Program;
  let server: ContainerServer;
  let hostPort: number;

  beforeAll(async () => {
    relay = await startRelayProcess();
    token = await mintToken(relay.keyFile, 'good');
    server = await startContainerServer();
    hostPort = await freePort();
    agent = startAgentProcess(relay.wsUrl, token, ['--map', `${hostPort}:${server.port}`]);
    await waitForMirror(relay.url, hostPort);
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
    await server?.close();
  });

  async function otherAgentStillWorks(): Promise<void> {
    const res = await httpRequest(`http://127.0.0.1:${hostPort}/hello`);

    expect(res.body.toString()).toBe('hello from the container');
  }

  it('is closed with PORTHOLE_ERR_FRAME_MALFORMED for an unknown frame kind', async () => {
    const bad = await mintToken(relay.keyFile, 'bad1');
    const closed = await sendAsAgent(relay.wsUrl, bad, frame(99, 1, 0));

    expect(closed.code).toBe(4000);
    expect(closed.reason).toBe('PORTHOLE_ERR_FRAME_MALFORMED');
    await otherAgentStillWorks();
  });

  it('is closed with PORTHOLE_ERR_FRAME_TOO_LARGE for an oversized frame', async () => {
    const bad = await mintToken(relay.keyFile, 'bad2');
    const closed = await sendAsAgent(relay.wsUrl, bad, frame(2, 1, 0x7fffffff, Buffer.alloc(16)));

    expect(closed).toMatchObject({ code: 4000, reason: 'PORTHOLE_ERR_FRAME_TOO_LARGE' });
    await otherAgentStillWorks();
  });

  it('is closed with PORTHOLE_ERR_STREAM_STATE for data on a stream never opened', async () => {
    const bad = await mintToken(relay.keyFile, 'bad3');
    const closed = await sendAsAgent(relay.wsUrl, bad, frame(2, 7, 3, Buffer.from('abc')));

    expect(closed).toMatchObject({ code: 4000, reason: 'PORTHOLE_ERR_STREAM_STATE' });
    await otherAgentStillWorks();
  });

  it('is closed with PORTHOLE_ERR_CONTROL_INVALID for an unknown control message', async () => {
    const bad = await mintToken(relay.keyFile, 'bad4');
    const closed = await sendAsAgent(relay.wsUrl, bad, JSON.stringify({ type: 'launch-missiles' }));

    expect(closed).toMatchObject({ code: 4000, reason: 'PORTHOLE_ERR_CONTROL_INVALID' });
    await otherAgentStillWorks();
  });

  it('is closed with PORTHOLE_ERR_HANDSHAKE for stream traffic before hello', async () => {
    const bad = await mintToken(relay.keyFile, 'bad5');
    const closed = await sendAsAgent(relay.wsUrl, bad, frame(2, 1, 1, Buffer.from('x')), {
      handshake: false,
    });

    expect(closed).toMatchObject({ code: 4000, reason: 'PORTHOLE_ERR_HANDSHAKE' });
    await otherAgentStillWorks();
  });

  it('is told the versions differ and closed with 4001', async () => {
    const bad = await mintToken(relay.keyFile, 'future');
    const ws = new WebSocket(`${relay.wsUrl}/agent`, {
      headers: { authorization: `Bearer ${bad}` },
    });
    const messages: string[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });

    ws.on('message', (data: Buffer) => messages.push(data.toString()));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(
      JSON.stringify({ type: 'hello', version: 2, nonce: 'n', software: 'porthole-agent/9' }),
    );

    expect(await closed).toEqual({ code: 4001, reason: 'PORTHOLE_ERR_VERSION_MISMATCH' });
    expect(JSON.parse(messages[0] ?? '{}')).toMatchObject({
      type: 'error',
      code: 'PORTHOLE_ERR_VERSION_MISMATCH',
      message: expect.stringContaining('run the same porthole release on both sides'),
    });
    await otherAgentStillWorks();
  });

  it('survives any run of garbage from authenticated agents, closing only their connections', async () => {
    const key = createPrivateKey(readFileSync(relay.keyFile));
    let run = 0;

    await fc.assert(
      fc.asyncProperty(
        fc.array(hostileMessageArb, { minLength: 1, maxLength: 4 }),
        async (sent) => {
          run += 1;

          const name = `fuzz-${run}`;
          const hostile = await mintAgentToken({ privateKey: key, name, ttlMs: 60_000 });
          // Frames may be cut across messages, so the relay may rightly wait for the rest of
          // one; a control message that no relay accepts ends each run.
          const closed = await sendAllAsAgent(relay.wsUrl, hostile, [...sent, END_OF_RUN]);

          // The relay closes the connection with one of the protocol's codes and a registered
          // reason (or ws's own, for a broken WebSocket frame), and serves everyone else.
          expect(closed.code, JSON.stringify(closed)).toBeOneOf([
            CloseCodes.PROTOCOL_ERROR,
            1002,
            1007,
            1009,
          ]);
          if (closed.code === CloseCodes.PROTOCOL_ERROR) {
            expect(closed.reason).toMatch(/^PORTHOLE_ERR_[A-Z_]+$/);
          }
          await otherAgentStillWorks();
        },
      ),
      { numRuns: 25, seed: 20261204, endOnFailure: true },
    );
  }, 120_000);

  it('is closed by ws with 1009 for a message over the size limit', async () => {
    const bad = await mintToken(relay.keyFile, 'bad6');
    const closed = await sendAsAgent(relay.wsUrl, bad, Buffer.alloc(2 * 1024 * 1024));

    expect(closed.code).toBe(1009);
    await otherAgentStillWorks();
  });
});
