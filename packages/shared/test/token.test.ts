import { createSecretKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

import {
  checkAgentName,
  createNonce,
  decodeAgentToken,
  ErrorCodes,
  mintAgentToken,
  PortholeError,
  publicJwk,
  signRelayProof,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  verifyAgentToken,
  verifyRelayProof,
} from '@porthole/shared';
import { type JWTPayload, SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';

const HOUR_MS = 3_600_000;

function keyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }

  throw new Error('expected a rejection');
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await rejection(promise);

  expect(err).toBeInstanceOf(PortholeError);
  expect(err).toMatchObject({ code });
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token signed with `privateKey` whose claims start from a valid agent token's. */
async function craft(
  privateKey: KeyObject,
  overrides: JWTPayload = {},
  omit: readonly string[] = [],
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = {
    rpk: publicJwk(privateKey),
    sub: 'dev',
    aud: TOKEN_AUDIENCE,
    iss: TOKEN_ISSUER,
    iat: now,
    exp: now + 3600,
    jti: 'token-id',
    ...overrides,
  };

  for (const name of omit) {
    delete claims[name];
  }

  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(privateKey);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('mintAgentToken and verifyAgentToken', () => {
  it('verifies a freshly minted token and returns its name, id and expiry', async () => {
    const { privateKey, publicKey } = keyPair();
    const before = Date.now();
    const token = await mintAgentToken({ privateKey, name: 'dev-box_1.local', ttlMs: HOUR_MS });
    const claims = await verifyAgentToken(token, publicKey);

    expect(claims.name).toBe('dev-box_1.local');
    expect(claims.id).toMatch(/^[\w-]{10,}$/);
    expect(claims.expiresAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + HOUR_MS);
    expect(claims.expiresAt).toBeLessThanOrEqual(Date.now() + HOUR_MS);
  });

  it('gives every minted token its own id', async () => {
    const { privateKey, publicKey } = keyPair();
    const tokens = await Promise.all(
      [1, 2, 3].map(() => mintAgentToken({ privateKey, name: 'dev', ttlMs: HOUR_MS })),
    );
    const ids = await Promise.all(
      tokens.map(async (t) => (await verifyAgentToken(t, publicKey)).id),
    );

    expect(new Set(ids).size).toBe(3);
  });

  it('refuses a token signed with another key with TOKEN_INVALID', async () => {
    const signer = keyPair();
    const other = keyPair();
    const token = await mintAgentToken({
      privateKey: signer.privateKey,
      name: 'dev',
      ttlMs: HOUR_MS,
    });

    await expectCode(verifyAgentToken(token, other.publicKey), ErrorCodes.TOKEN_INVALID);
  });

  it('refuses a token whose lifetime is over with TOKEN_EXPIRED', async () => {
    const { privateKey, publicKey } = keyPair();

    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() - HOUR_MS);

    const token = await mintAgentToken({ privateKey, name: 'dev', ttlMs: 1000 });

    vi.useRealTimers();

    await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_EXPIRED);
  });

  it('refuses a hand-made token with exp in the past with TOKEN_EXPIRED', async () => {
    const { privateKey, publicKey } = keyPair();
    const now = Math.floor(Date.now() / 1000);
    const token = await craft(privateKey, { iat: now - 120, exp: now - 60 });

    await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_EXPIRED);
  });

  it('refuses an unsigned token (alg none) with TOKEN_INVALID', async () => {
    const { privateKey, publicKey } = keyPair();
    const signed = await craft(privateKey);
    const payload = signed.split('.')[1] as string;

    await expectCode(
      verifyAgentToken(`${base64url({ alg: 'none', typ: 'JWT' })}.${payload}.`, publicKey),
      ErrorCodes.TOKEN_INVALID,
    );
  });

  it('refuses an HS256 token keyed with the public key bytes with TOKEN_INVALID', async () => {
    const { privateKey, publicKey } = keyPair();
    const secret = createSecretKey(Buffer.from(publicJwk(privateKey)['x'] ?? '', 'base64url'));
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ rpk: publicJwk(privateKey), jti: 'token-id' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject('dev')
      .setAudience(TOKEN_AUDIENCE)
      .setIssuer(TOKEN_ISSUER)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(secret);

    await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_INVALID);
  });

  it('refuses a token for another audience with TOKEN_INVALID', async () => {
    const { privateKey, publicKey } = keyPair();
    const token = await craft(privateKey, { aud: 'someone-else' });

    await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_INVALID);
  });

  it('refuses a token from another issuer with TOKEN_INVALID', async () => {
    const { privateKey, publicKey } = keyPair();
    const token = await craft(privateKey, { iss: 'someone-else' });

    await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_INVALID);
  });

  it.each(['sub', 'exp', 'iat', 'jti'])(
    'refuses a token without %s with TOKEN_INVALID',
    async (claim) => {
      const { privateKey, publicKey } = keyPair();
      const token = await craft(privateKey, {}, [claim]);

      await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_INVALID);
    },
  );

  it.each(['', '../etc', 'a b', 'x'.repeat(64)])(
    'refuses a signed token naming the invalid agent %j with TOKEN_INVALID',
    async (sub) => {
      const { privateKey, publicKey } = keyPair();
      const token = await craft(privateKey, { sub });

      await expectCode(verifyAgentToken(token, publicKey), ErrorCodes.TOKEN_INVALID);
    },
  );

  it('refuses a token whose payload was edited after signing with TOKEN_INVALID', async () => {
    const { privateKey, publicKey } = keyPair();
    const [header, , signature] = (await craft(privateKey)).split('.');
    const edited = `${header}.${base64url({ sub: 'admin', aud: TOKEN_AUDIENCE })}.${signature}`;

    await expectCode(verifyAgentToken(edited, publicKey), ErrorCodes.TOKEN_INVALID);
  });

  it.each(['', 'not a token', 'a.b.c', 'a.b'])(
    'refuses the garbage %j with TOKEN_INVALID',
    async (text) => {
      const { publicKey } = keyPair();

      await expectCode(verifyAgentToken(text, publicKey), ErrorCodes.TOKEN_INVALID);
    },
  );

  it('refuses to mint a token for an invalid agent name', async () => {
    const { privateKey } = keyPair();

    await expectCode(
      mintAgentToken({ privateKey, name: 'bad name', ttlMs: HOUR_MS }),
      ErrorCodes.INVALID_OPTION,
    );
  });
});

describe('decodeAgentToken', () => {
  it('returns the claims and the relay key the token pins', async () => {
    const { privateKey, publicKey } = keyPair();
    const token = await mintAgentToken({ privateKey, name: 'dev', ttlMs: HOUR_MS });
    const decoded = await decodeAgentToken(token);

    expect(decoded.relayKey.type).toBe('public');
    expect(decoded.relayKey.equals(publicKey)).toBe(true);
    expect(decoded).toMatchObject(await verifyAgentToken(token, publicKey));
  });

  it('refuses a token not signed by the key it pins with TOKEN_INVALID', async () => {
    const pinned = keyPair();
    const signer = keyPair();
    const token = await craft(signer.privateKey, { rpk: publicJwk(pinned.privateKey) });

    await expectCode(decodeAgentToken(token), ErrorCodes.TOKEN_INVALID);
  });

  it('refuses an expired token with TOKEN_EXPIRED', async () => {
    const { privateKey } = keyPair();
    const now = Math.floor(Date.now() / 1000);

    await expectCode(
      decodeAgentToken(await craft(privateKey, { iat: now - 120, exp: now - 60 })),
      ErrorCodes.TOKEN_EXPIRED,
    );
  });

  it('refuses a token without a pinned key with TOKEN_INVALID', async () => {
    const { privateKey } = keyPair();

    await expectCode(
      decodeAgentToken(await craft(privateKey, {}, ['rpk'])),
      ErrorCodes.TOKEN_INVALID,
    );
  });

  it.each(['', 'garbage', 'a.b.c'])('refuses the garbage %j with TOKEN_INVALID', async (text) => {
    await expectCode(decodeAgentToken(text), ErrorCodes.TOKEN_INVALID);
  });
});

describe('publicJwk', () => {
  it('exports only the public half of a private key', () => {
    const { privateKey } = keyPair();
    const jwk = publicJwk(privateKey);

    expect(Object.keys(jwk).sort()).toEqual(['crv', 'kty', 'x']);
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
  });
});

describe('relay proof', () => {
  it('verifies a proof signed by the pinned key for the same nonce', () => {
    const { privateKey, publicKey } = keyPair();
    const nonce = createNonce();

    expect(verifyRelayProof(publicKey, nonce, signRelayProof(privateKey, nonce))).toBe(true);
  });

  it('refuses a proof signed by another key', () => {
    const pinned = keyPair();
    const squatter = keyPair();
    const nonce = createNonce();

    expect(
      verifyRelayProof(pinned.publicKey, nonce, signRelayProof(squatter.privateKey, nonce)),
    ).toBe(false);
  });

  it('refuses a proof for another nonce', () => {
    const { privateKey, publicKey } = keyPair();
    const proof = signRelayProof(privateKey, createNonce());

    expect(verifyRelayProof(publicKey, createNonce(), proof)).toBe(false);
  });

  it.each(['', 'not-a-signature', 'A'.repeat(86)])('refuses the malformed proof %j', (proof) => {
    const { publicKey } = keyPair();

    expect(verifyRelayProof(publicKey, createNonce(), proof)).toBe(false);
  });

  it('does not accept a plain signature of the nonce as a proof', () => {
    const { privateKey, publicKey } = keyPair();
    const nonce = createNonce();
    const bare = sign(null, Buffer.from(nonce), privateKey).toString('base64url');

    expect(verifyRelayProof(publicKey, nonce, bare)).toBe(false);
  });

  it('creates distinct 32-byte base64url nonces', () => {
    const nonces = new Set(Array.from({ length: 50 }, createNonce));

    expect(nonces.size).toBe(50);

    for (const nonce of nonces) {
      expect(Buffer.from(nonce, 'base64url')).toHaveLength(32);
      expect(nonce).toMatch(/^[\w-]{43}$/);
    }
  });
});

describe('checkAgentName', () => {
  it.each(['a', 'dev', 'Dev-Box', 'my_app.2', '0abc', 'x'.repeat(63)])('accepts %j', (name) => {
    expect(checkAgentName(name)).toBe(name);
  });

  it.each([
    '',
    '-dev',
    '.dev',
    '_dev',
    'dev box',
    'dev/box',
    'dev:box',
    'dév',
    'dev\n',
    '\tdev',
    'x'.repeat(64),
  ])('refuses %j with INVALID_OPTION', (name) => {
    let thrown: unknown;

    try {
      checkAgentName(name);
    } catch (err) {
      thrown = err;
    }

    expect(thrown).toBeInstanceOf(PortholeError);
    expect(thrown).toMatchObject({ code: ErrorCodes.INVALID_OPTION });
  });
});
