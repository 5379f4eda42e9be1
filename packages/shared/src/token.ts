import { createPublicKey, type KeyObject, randomBytes, sign, verify } from 'node:crypto';

import { decodeJwt, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { nanoid } from 'nanoid';

import { ErrorCodes, PortholeError } from './errors.js';
import {
  AGENT_NAME_PATTERN,
  TOKEN_AUDIENCE,
  TOKEN_CLOCK_TOLERANCE_S,
  TOKEN_ISSUER,
} from './limits.js';

/** What a verified or decoded agent token says. */
export interface AgentTokenClaims {
  /** The agent's name: the container it runs in, as the user called it. */
  name: string;
  /** Token id. */
  id: string;
  /** When the token stops working (ms since the epoch). */
  expiresAt: number;
}

/** A token as the agent reads it: its claims and the relay key it pins. */
export interface DecodedAgentToken extends AgentTokenClaims {
  relayKey: KeyObject;
}

export interface MintOptions {
  privateKey: KeyObject;
  name: string;
  ttlMs: number;
}

/** The public half of a relay key as a JWK, as embedded in tokens. */
export function publicJwk(key: KeyObject): Record<string, string> {
  const jwk = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' });

  return { kty: String(jwk.kty), crv: String(jwk.crv), x: String(jwk.x) };
}

/** Checks that `name` can be an agent name. */
export function checkAgentName(name: string): string {
  if (!AGENT_NAME_PATTERN.test(name)) {
    throw new PortholeError(
      ErrorCodes.INVALID_OPTION,
      `agent name "${name.slice(0, 80)}" must be 1 to 63 letters, digits, dots, dashes or ` +
        'underscores, starting with a letter or digit',
    );
  }

  return name;
}

/**
 * Mints an agent token: a JWT signed with the relay's Ed25519 key that names the agent and
 * carries the relay's public key, so that the agent can tell the real relay from a squatter.
 */
export async function mintAgentToken({ privateKey, name, ttlMs }: MintOptions): Promise<string> {
  checkAgentName(name);

  const now = Math.floor(Date.now() / 1000);

  return new SignJWT({ rpk: publicJwk(privateKey) })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setSubject(name)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuer(TOKEN_ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(ttlMs / 1000)))
    .setJti(nanoid())
    .sign(privateKey);
}

function claimsOf(payload: Record<string, unknown>): AgentTokenClaims {
  const { sub, jti, exp } = payload;

  if (typeof sub !== 'string' || !AGENT_NAME_PATTERN.test(sub)) {
    throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'token names no valid agent');
  }

  if (typeof jti !== 'string' || typeof exp !== 'number') {
    throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'token lacks an id or an expiry');
  }

  return { name: sub, id: jti, expiresAt: exp * 1000 };
}

/**
 * Verifies a token on the relay: signature by `publicKey`, algorithm, audience, issuer and
 * lifetime. Throws a PortholeError coded TOKEN_INVALID or TOKEN_EXPIRED.
 */
export async function verifyAgentToken(
  token: string,
  publicKey: KeyObject,
): Promise<AgentTokenClaims> {
  try {
    const { payload } = await jwtVerify(token, publicKey, {
      algorithms: ['EdDSA'],
      audience: TOKEN_AUDIENCE,
      issuer: TOKEN_ISSUER,
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      clockTolerance: TOKEN_CLOCK_TOLERANCE_S,
    });

    // A token issued in the future was minted with a wrong clock or forged ahead of time.
    if ((payload.iat ?? 0) > Date.now() / 1000 + TOKEN_CLOCK_TOLERANCE_S) {
      throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'token issued in the future');
    }

    return claimsOf(payload);
  } catch (err) {
    if (err instanceof PortholeError) throw err;
    if (err instanceof joseErrors.JWTExpired) {
      throw new PortholeError(ErrorCodes.TOKEN_EXPIRED, 'token expired');
    }
    throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'token not accepted');
  }
}

/**
 * Reads a token on the agent's side: its claims and the relay key it pins. The token must be
 * signed by the key it carries (which catches a damaged or hand-edited token early); whether
 * the relay accepts it is for the relay to say.
 */
export async function decodeAgentToken(token: string): Promise<DecodedAgentToken> {
  let relayKey: KeyObject;

  try {
    const payload = decodeJwt(token);

    relayKey = createPublicKey({ key: payload['rpk'] as never, format: 'jwk' });
  } catch {
    throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'this is not a porthole agent token');
  }

  try {
    const { payload } = await jwtVerify(token, relayKey, {
      algorithms: ['EdDSA'],
      audience: TOKEN_AUDIENCE,
      issuer: TOKEN_ISSUER,
    });

    return { ...claimsOf(payload), relayKey };
  } catch (err) {
    if (err instanceof PortholeError) throw err;
    if (err instanceof joseErrors.JWTExpired) {
      throw new PortholeError(ErrorCodes.TOKEN_EXPIRED, 'token expired');
    }
    throw new PortholeError(ErrorCodes.TOKEN_INVALID, 'token is damaged or not for an agent');
  }
}

/**
 * What a relay's signature vouches for. `handshake`: this WebSocket reached the relay.
 * `pre-token`: the server at the relay address holds the key, asked before the agent sends
 * its token anywhere. Each signs its own context, so one answer never serves as the other.
 */
export type ProofPurpose = 'handshake' | 'pre-token';

const PROOF_CONTEXTS: Record<ProofPurpose, string> = {
  handshake: 'porthole relay proof v1\n',
  'pre-token': 'porthole relay proof before token v1\n',
};

/** A fresh nonce for the relay to sign. */
export function createNonce(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether `nonce` has the shape of one from createNonce (or a peer's equivalent). */
export function isNonce(nonce: string): boolean {
  return /^[A-Za-z0-9_-]{16,128}$/.test(nonce);
}

/** The relay's answer to a nonce: an Ed25519 signature, base64url. */
export function signRelayProof(
  privateKey: KeyObject,
  nonce: string,
  purpose: ProofPurpose = 'handshake',
): string {
  return sign(null, Buffer.from(PROOF_CONTEXTS[purpose] + nonce), privateKey).toString('base64url');
}

/** Whether `proof` is the pinned relay key's signature of `nonce` for `purpose`. */
export function verifyRelayProof(
  relayKey: KeyObject,
  nonce: string,
  proof: string,
  purpose: ProofPurpose = 'handshake',
): boolean {
  try {
    return verify(
      null,
      Buffer.from(PROOF_CONTEXTS[purpose] + nonce),
      relayKey,
      Buffer.from(proof, 'base64url'),
    );
  } catch {
    return false;
  }
}
