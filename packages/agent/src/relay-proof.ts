import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

import {
  HANDSHAKE_TIMEOUT_MS,
  MAX_PROOF_ANSWER_BYTES,
  PRE_TOKEN_PROOF_SUFFIX,
} from '@porthole/shared';

/** Where the relay behind the agents' endpoint `endpoint` (a ws:// or wss:// URL) signs `nonce`. */
export function proofUrl(endpoint: string, nonce: string): URL {
  const url = new URL(endpoint);

  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = `${url.pathname.replace(/\/$/, '')}${PRE_TOKEN_PROOF_SUFFIX}`;
  url.search = new URLSearchParams({ nonce }).toString();

  return url;
}

/**
 * Asks the server at the relay's address to sign `nonce`, with nothing secret in the request.
 * Resolves with the proof it gave, or null when it answered 200 without one: checking the
 * proof is the caller's job. Rejects when no usable answer came (unreachable, another status,
 * too slow), which redialling may cure.
 */
export function askRelayProof(
  endpoint: string,
  nonce: string,
  signal: AbortSignal,
): Promise<string | null> {
  const url = proofUrl(endpoint, nonce);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;

  return new Promise((resolve, reject) => {
    const req = request(url, { signal, timeout: HANDSHAKE_TIMEOUT_MS }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`the relay answered HTTP ${res.statusCode ?? 0} to ${url.pathname}`));
        return;
      }

      let body = '';

      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;

        if (body.length > MAX_PROOF_ANSWER_BYTES) {
          req.destroy(new Error(`the answer to ${url.pathname} is too large`));
        }
      });
      res.on('end', () => resolve(proofOf(body)));
    });

    req.on('timeout', () => {
      req.destroy(new Error(`no answer within ${HANDSHAKE_TIMEOUT_MS / 1000} s`));
    });
    req.on('error', reject);
    req.end();
  });
}

function proofOf(body: string): string | null {
  try {
    const proof = (JSON.parse(body) as { proof?: unknown }).proof;

    return typeof proof === 'string' ? proof : null;
  } catch {
    return null;
  }
}
