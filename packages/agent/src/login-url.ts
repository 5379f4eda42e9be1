import { isIP } from 'node:net';

import { LOOPBACK_HOST_NAMES } from '@porthole/shared';

/** Where a login's callback will arrive inside the container. */
export interface LoginCallback {
  port: number;
  path: string;
  state?: string;
}

/**
 * Reads the callback of an authorization URL: its `redirect_uri` (when it points at this
 * machine's loopback over http) and its `state`. Returns null for a URL without one, such as
 * a device-flow page, which is simply opened.
 */
export function loginCallbackOf(url: string): LoginCallback | null {
  let redirect: URL;
  let state: string | null;

  try {
    const page = new URL(url);

    state = page.searchParams.get('state');
    redirect = new URL(page.searchParams.get('redirect_uri') ?? '');
  } catch {
    return null;
  }

  const host = redirect.hostname.toLowerCase();
  const loopback = LOOPBACK_HOST_NAMES.has(host) || (isIP(host) === 4 && host.startsWith('127.'));

  if (redirect.protocol !== 'http:' || !loopback) {
    return null;
  }

  const callback: LoginCallback = {
    port: redirect.port === '' ? 80 : Number(redirect.port),
    path: redirect.pathname,
  };

  if (state !== null && state !== '') {
    callback.state = state;
  }

  return callback;
}
