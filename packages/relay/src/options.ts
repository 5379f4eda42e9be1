import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

import {
  ErrorCodes,
  LOGIN_TTL_MS,
  MAX_TIMER_MS,
  parseDuration,
  PortholeError,
  TOKEN_CLOCK_TOLERANCE_S,
} from '@porthole/shared';

import { addressScope, containerBridgeAddresses } from './listen-addresses.js';

function invalid(message: string): PortholeError {
  return new PortholeError(ErrorCodes.INVALID_OPTION, message);
}

/** Reads a TCP port (0 lets the system choose). */
export function parsePort(text: string, what = '--port'): number {
  const port = Number(text);

  if (!/^\d+$/.test(text.trim()) || port > 65535) {
    throw invalid(`${what} "${text}" is not a port number (0 to 65535)`);
  }

  return port;
}

/**
 * Longest `--hold`. A held request is a browser waiting on an open connection, and browsers
 * give up long before this (Firefox after 300 s); a login's `state` is forgotten after
 * LOGIN_TTL_MS anyway, so holding longer could no longer route the callback it waits for.
 * It also keeps the hold far inside what node's timers can count (MAX_TIMER_MS).
 */
export const MAX_HOLD_MS = Math.min(LOGIN_TTL_MS, MAX_TIMER_MS);

/**
 * Shortest `--ttl`. The relay accepts a token up to TOKEN_CLOCK_TOLERANCE_S past its expiry,
 * so a shorter lifetime would not mean what it says, and 0 would mint a token dead on arrival.
 */
export const MIN_TOKEN_TTL_MS = TOKEN_CLOCK_TOLERANCE_S * 1000;

/** Reads `--hold`: how long a request waits for its container to reconnect. */
export function parseHold(text: string): number {
  return parseDuration(text, '--hold', { max: MAX_HOLD_MS });
}

/** Reads `--ttl`: a token's lifetime. It is a date in the token, not a timer, so it may be long. */
export function parseTtl(text: string): number {
  return parseDuration(text, '--ttl', { min: MIN_TOKEN_TTL_MS });
}

/** Appends a repeatable option's values; a comma-separated list (from the environment) too. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(/[\s,]+/).filter((v) => v !== '')];
}

function checkAddress(address: string, option: string): string {
  if (address === 'localhost') return '127.0.0.1';

  if (isIP(address) === 0) {
    throw invalid(`${option} "${address}" is not an IP address`);
  }

  return address;
}

export interface ListenPlan {
  hosts: string[];
  /** Private addresses the user should be warned about. */
  privateHosts: string[];
}

/**
 * Decides where the relay listens. By default: loopback and every local container bridge
 * (where `host.docker.internal` leads with host-gateway). A public or wildcard address is
 * refused unless the tunnel is encrypted or the user insists with --insecure.
 */
export function planListen(requested: string[], tls: boolean, insecure: boolean): ListenPlan {
  const hosts =
    requested.length > 0
      ? requested.map((h) => checkAddress(h, '--host'))
      : ['127.0.0.1', ...containerBridgeAddresses()];
  const unique = [...new Set(hosts)];
  // Only an address the user named gets the warning: the container bridges found by default
  // are private by nature, and reaching them is what the relay is for.
  const privateHosts =
    requested.length > 0 ? unique.filter((h) => addressScope(h) === 'private') : [];
  const publicHosts = unique.filter((h) => addressScope(h) === 'public');

  if (publicHosts.length > 0 && !tls && !insecure) {
    throw invalid(
      `--host ${publicHosts.join(', ')} reaches beyond this machine and its private networks: ` +
        'give --tls-cert and --tls-key so agents connect with wss://, or --insecure to accept ' +
        'unencrypted traffic',
    );
  }

  return { hosts: unique, privateHosts };
}

/** Checks the mirror addresses: mirrors of container ports listen on loopback only. */
export function planMirrors(requested: string[]): string[] {
  const hosts = requested.map((h) => checkAddress(h, '--mirror-host'));

  for (const host of hosts) {
    if (addressScope(host) !== 'loopback') {
      throw invalid(
        `--mirror-host ${host} is not a loopback address: mirrored container ports are only ` +
          'ever reachable from this machine',
      );
    }
  }

  return [...new Set(hosts)];
}

/** Reads the TLS certificate and key, when both are given. */
export function loadTls(cert?: string, key?: string): { cert: Buffer; key: Buffer } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw invalid('--tls-cert and --tls-key go together');
  }

  try {
    return { cert: readFileSync(cert), key: readFileSync(key) };
  } catch (err) {
    throw invalid(`cannot read TLS files: ${(err as Error).message}`);
  }
}
