/**
 * Every way a token can be wrong, against the real relay process: each is refused before any
 * WebSocket exists, with 401 and a body that names a code and nothing else. Each case dials
 * from its own loopback address (127.0.0.0/8 all reaches the relay), so that the relay's
 * limit on failed attempts per address does not mix the cases up.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';

import { MAX_AUTH_FAILURES, publicJwk, TOKEN_AUDIENCE, TOKEN_ISSUER } from '@porthole/shared';
import { type JWTPayload, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Program } from '../helpers/processes.js';
import {
  mintToken,
  type RelayProcess,
  startAgentProcess,
  startRelayProcess,
} from '../helpers/relay.js';

interface RawResponse {
  status: number;
  /** Header names in lower case, with their values. */
  headers: Record<string, string>;
  body: string;
  /** Everything the relay sent, as text. */
  raw: string;
  /** Whether the relay closed the connection after answering. */
  closed: boolean;
}

// Sends a WebSocket upgrade request by hand (so that any header, however broken, goes out as
// written) from `localAddress`, and reads the answer until the relay closes the connection,
// or until a 101 shows that it upgraded.
function rawUpgrade(
  port: number,
  headers: Record<string, string>,
  localAddress: string,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms: ${Buffer.concat(chunks)}`));
    }, timeoutMs);

    const parse = (closed: boolean): RawResponse | undefined => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const end = raw.indexOf('\r\n\r\n');

      if (end === -1) return undefined;

      const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
      const parsed: Record<string, string> = {};

      for (const line of lines) {
        const colon = line.indexOf(':');

        parsed[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }

      return {
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers: parsed,
        body: raw.slice(end + 4),
        raw,
        closed,
      };
    };

    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);

      if (parse(false)?.status === 101) {
        clearTimeout(timer);
        resolve(parse(false) as RawResponse);
        socket.destroy();
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);

      const response = parse(true);

      if (response === undefined) {
        reject(new Error(`the relay closed without a whole answer: ${Buffer.concat(chunks)}`));
      } else {
        resolve(response);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(
      'GET /agent HTTP/1.1\r\n' +
        `Host: 127.0.0.1:${port}\r\n` +
        'Connection: Upgrade\r\n' +
        'Upgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        Object.entries(headers)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('') +
        '\r\n',
    );
  });
}

function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

const now = (): number => Math.floor(Date.now() / 1000);

/** A token like the relay mints, with any claim overridden (undefined leaves it out). */
function claims(overrides: Partial<Record<keyof JWTPayload, unknown>> = {}): JWTPayload {
  const t = now();

  return Object.fromEntries(
    Object.entries({
      sub: 'dev',
      aud: TOKEN_AUDIENCE,
      iss: TOKEN_ISSUER,
      iat: t,
      exp: t + 3600,
      jti: randomBytes(8).toString('base64url'),
      ...overrides,
    }).filter(([, value]) => value !== undefined),
  ) as JWTPayload;
}

function signEdDSA(key: KeyObject, payload: JWTPayload): Promise<string> {
  return new SignJWT({ ...payload, rpk: publicJwk(key) })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .sign(key);
}

function b64url(text: string): string {
  return Buffer.from(text).toString('base64url');
}

// Source addresses handed out one per case: 127.0.0.10, 127.0.0.11, …
let nextHost = 10;

function freshAddress(): string {
  nextHost += 1;
  return `127.0.0.${nextHost}`;
}

describe('the relay refusing a bad agent token', () => {
  let relay: RelayProcess;
  let other: RelayProcess;
  let key: KeyObject;
  let valid: string;
  const tried: string[] = [];

  beforeAll(async () => {
    [relay, other] = await Promise.all([startRelayProcess(), startRelayProcess()]);
    key = createPrivateKey(readFileSync(relay.keyFile));
    valid = await mintToken(relay.keyFile, 'dev');
  });

  afterAll(async () => {
    await Promise.all([relay?.program.stop(), other?.program.stop()]);
  });

  /** Dials with `headers` from an address of its own and checks the refusal's shape. */
  async function refusal(
    headers: Record<string, string>,
    address = freshAddress(),
  ): Promise<RawResponse> {
    const token = /^Bearer (.*)$/.exec(headers['Authorization'] ?? '')?.[1];

    if (token !== undefined && token !== '') tried.push(token);

    const res = await rawUpgrade(relay.port, headers, address);

    // No upgrade, no detail: a JSON body naming a code, the relay's usual headers, and the
    // connection closed.
    expect(res.status).not.toBe(101);
    expect(res.headers['upgrade']).toBeUndefined();
    expect(res.headers['sec-websocket-accept']).toBeUndefined();
    expect(res.closed).toBe(true);
    expect(res.body).toMatch(/^\{"error":"PORTHOLE_ERR_[A-Z_]+"\}$/);

    if (token !== undefined && token.length >= 8) {
      for (const part of token.split('.').filter((p) => p.length >= 8)) {
        expect(res.raw).not.toContain(part);
      }
    }

    expect(res.raw).not.toContain(publicJwk(key)['x']);
    expect(res.raw).not.toMatch(/BEGIN|PRIVATE|at \w+ \(|node:internal|Error:/);

    return res;
  }

  function expectRefused(res: RawResponse, code: string): void {
    expect({ status: res.status, body: res.body }).toEqual({
      status: 401,
      body: JSON.stringify({ error: code }),
    });
  }

  it('upgrades a token it minted, from one of the test addresses (the control case)', async () => {
    const res = await rawUpgrade(relay.port, bearer(valid), freshAddress());

    expect(res.status).toBe(101);
  });

  it('refuses a request without Authorization with PORTHOLE_ERR_TOKEN_MISSING', async () => {
    expectRefused(await refusal({}), 'PORTHOLE_ERR_TOKEN_MISSING');
  });

  it('refuses a bearer value that is not a JWT with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    expectRefused(await refusal(bearer('not-a-jwt')), 'PORTHOLE_ERR_TOKEN_INVALID');
  });

  it('refuses a token of two parts with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const [header, payload] = valid.split('.');

    expectRefused(await refusal(bearer(`${header}.${payload}`)), 'PORTHOLE_ERR_TOKEN_INVALID');
  });

  it('refuses a token whose header is not base64url JSON with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const [, payload, signature] = valid.split('.');

    // Five characters cannot be base64 of anything; the others decode to no JSON.
    expectRefused(
      await refusal(bearer(`eyJhb.${payload}.${signature}`)),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
    expectRefused(
      await refusal(bearer(`${b64url('{"alg":')}.${payload}.${signature}`)),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token in standard base64 (+, /, =) with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const [header, payload, signature] = valid.split('.') as [string, string, string];
    const standard = (part: string) => Buffer.from(part, 'base64url').toString('base64');

    // A token was given, only badly encoded: it is invalid, not missing.
    expectRefused(
      await refusal(bearer(`${standard(header)}.${standard(payload)}.${standard(signature)}`)),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token signed by a foreign Ed25519 key with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const foreign = generateKeyPairSync('ed25519').privateKey;

    expectRefused(
      await refusal(bearer(await signEdDSA(foreign, claims()))),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token signed by a foreign key that embeds the relay’s public key', async () => {
    const foreign = generateKeyPairSync('ed25519').privateKey;
    const forged = await new SignJWT({ ...claims(), rpk: publicJwk(key) })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .sign(foreign);

    expectRefused(await refusal(bearer(forged)), 'PORTHOLE_ERR_TOKEN_INVALID');
  });

  it('refuses an unsigned token (alg none) with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const unsigned = new UnsecuredJWT({ ...claims(), rpk: publicJwk(key) }).encode();

    expect(JSON.parse(Buffer.from(unsigned.split('.')[0] ?? '', 'base64url').toString())).toEqual({
      alg: 'none',
    });
    expectRefused(await refusal(bearer(unsigned)), 'PORTHOLE_ERR_TOKEN_INVALID');
  });

  it('refuses an alg none token that keeps the real signature with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const [, payload, signature] = valid.split('.');

    expectRefused(
      await refusal(bearer(`${b64url('{"alg":"none"}')}.${payload}.${signature}`)),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it.each([
    ['the PEM text', (k: KeyObject) => Buffer.from(k.export({ format: 'pem', type: 'spki' }))],
    ['the DER bytes', (k: KeyObject) => k.export({ format: 'der', type: 'spki' })],
    ['the raw 32 bytes', (k: KeyObject) => Buffer.from(publicJwk(k)['x'] ?? '', 'base64url')],
  ])(
    'refuses HS256 keyed with %s of the relay’s public key (algorithm confusion)',
    async (_what, secretOf) => {
      const secret = new Uint8Array(secretOf(createPublicKey(key)));
      const confused = await new SignJWT({ ...claims(), rpk: publicJwk(key) })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(secret);

      expectRefused(await refusal(bearer(confused)), 'PORTHOLE_ERR_TOKEN_INVALID');
    },
  );

  it('refuses a token for another audience with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    expectRefused(
      await refusal(bearer(await signEdDSA(key, claims({ aud: 'porthole-admin' })))),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token from another issuer with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    expectRefused(
      await refusal(bearer(await signEdDSA(key, claims({ iss: 'someone-else' })))),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses an expired token with PORTHOLE_ERR_TOKEN_EXPIRED', async () => {
    expectRefused(
      await refusal(bearer(await signEdDSA(key, claims({ iat: now() - 7200, exp: now() - 3600 })))),
      'PORTHOLE_ERR_TOKEN_EXPIRED',
    );
  });

  it('refuses a token whose nbf is an hour ahead with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    expectRefused(
      await refusal(bearer(await signEdDSA(key, claims({ nbf: now() + 3600 })))),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token whose iat is an hour ahead with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    expectRefused(
      await refusal(bearer(await signEdDSA(key, claims({ iat: now() + 3600, exp: now() + 7200 })))),
      'PORTHOLE_ERR_TOKEN_INVALID',
    );
  });

  it('refuses a token another relay minted (replayed here) with PORTHOLE_ERR_TOKEN_INVALID', async () => {
    const foreign = await mintToken(other.keyFile, 'dev');

    // The token is good where it came from…
    expect((await rawUpgrade(other.port, bearer(foreign), freshAddress())).status).toBe(101);
    // …and worth nothing here.
    expectRefused(await refusal(bearer(foreign)), 'PORTHOLE_ERR_TOKEN_INVALID');
  });

  it('answers every refusal with the same headers, so nothing tells the failures apart', async () => {
    const missing = await refusal({});
    const foreign = await refusal(bearer('a.b.c'));

    expect(Object.keys(missing.headers).sort()).toEqual(Object.keys(foreign.headers).sort());
    expect(Object.keys(missing.headers).sort()).toEqual([
      'connection',
      'content-length',
      'content-type',
    ]);
  });

  it('logs no part of any token it refused', async () => {
    const address = freshAddress();
    const foreign = await signEdDSA(generateKeyPairSync('ed25519').privateKey, claims());

    await refusal(bearer(foreign), address);
    // The refusal is logged with the address it came from; wait for that line.
    await relay.program.waitForLine(
      (line) => line.includes('refused an agent connection') && line.includes(address),
    );

    for (const token of tried) {
      for (const part of token.split('.').filter((p) => p.length >= 16)) {
        expect(relay.program.output).not.toContain(part);
      }
    }
  });
});

describe('the relay slowing down an address that keeps failing', () => {
  let relay: RelayProcess;
  let valid: string;
  let agent: Program | undefined;

  beforeAll(async () => {
    relay = await startRelayProcess();
    valid = await mintToken(relay.keyFile, 'dev');
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.program.stop();
  });

  // Sends 30 bad tokens in a row from `address`, as fast as the relay answers.
  async function hammer(address: string): Promise<RawResponse[]> {
    const answers: RawResponse[] = [];

    for (let i = 0; i < 30; i += 1) {
      answers.push(await rawUpgrade(relay.port, bearer(`bad.${i}.token`), address));
    }

    return answers;
  }

  it('answers 429 with Retry-After once one address has failed 30 times in a row', async () => {
    const answers = await hammer('127.0.0.50');
    const limited = answers.filter((res) => res.status === 429);

    expect(answers.map((res) => res.status).every((s) => s === 401 || s === 429)).toBe(true);
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.at(-1)?.status).toBe(429);

    for (const res of limited) {
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(res.body).toBe('{"error":"PORTHOLE_ERR_TOO_MANY_FAILURES"}');
      expect(res.closed).toBe(true);
    }
  });

  // Every bad token is still checked, so the cost worth bounding is the log: a flood from one
  // address must not write a line per attempt.
  it('logs one line for an address past the limit, not one per failure, and counts them all', async () => {
    const failed = async () => {
      const text = await (await fetch(`${relay.url}/metrics`)).text();

      return [...text.matchAll(/^porthole_auth_failures_total\{[^}]*\} (\d+)$/gm)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
    };
    const before = await failed();

    await hammer('127.0.0.80');
    // Log lines come out in order: once a later refusal is logged, so are the hammer's.
    await rawUpgrade(relay.port, bearer('bad.marker.token'), '127.0.0.81');
    await relay.program.waitForLine((line) => line.includes('"127.0.0.81"'));

    const lines = relay.program.lines.filter((line) => line.includes('"127.0.0.80"'));

    expect(lines).toHaveLength(MAX_AUTH_FAILURES + 1);
    expect(lines.at(-1)).toContain('PORTHOLE_ERR_TOO_MANY_FAILURES');
    expect((await failed()) - before).toBe(31);
  });

  it('keeps answering 401, not 429, to another address meanwhile', async () => {
    await hammer('127.0.0.60');

    const res = await rawUpgrade(relay.port, bearer('bad.other.token'), '127.0.0.61');

    expect(res.status).toBe(401);
  });

  it('still upgrades a valid token from an address it answers 429', async () => {
    const answers = await hammer('127.0.0.70');

    expect(answers.at(-1)?.status).toBe(429);
    expect((await rawUpgrade(relay.port, bearer(valid), '127.0.0.70')).status).toBe(101);
  });

  it('still connects a real agent from an address it answers 429', async () => {
    // The agent dials from 127.0.0.1, so that is the address that fails here.
    const answers = await hammer('127.0.0.1');

    expect(answers.at(-1)?.status).toBe(429);

    agent = startAgentProcess(relay.wsUrl, valid, ['--no-watch']);
    await agent.waitForLine(/connected to the relay/);
  });
});
