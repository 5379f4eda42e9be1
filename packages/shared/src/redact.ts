/**
 * Describes a request target for a log line: the path and the names of its query parameters,
 * never their values (`/callback?code&state`). Authorization codes, `state`, tokens and
 * secrets all travel as query values, so none of them can reach a log.
 */
export function describeTarget(target: string): string {
  // The fragment goes first: it may itself hold a '?' and secrets (an implicit-flow token).
  const bare = stripFragment(target);
  const queryAt = bare.indexOf('?');

  if (queryAt === -1) {
    return bare;
  }

  const path = bare.slice(0, queryAt);
  const names: string[] = [];

  for (const pair of bare.slice(queryAt + 1).split('&')) {
    if (pair === '') {
      continue;
    }

    const name = pair.split('=', 1)[0] ?? '';
    names.push(safeName(name));
  }

  return names.length === 0 ? path : `${path}?${names.join('&')}`;
}

function stripFragment(text: string): string {
  const hashAt = text.indexOf('#');

  return hashAt === -1 ? text : text.slice(0, hashAt);
}

// A parameter name is chosen by the client and is not secret, but a hostile one could be long
// or carry control characters into a terminal.
function safeName(name: string): string {
  let decoded: string;

  try {
    decoded = decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    decoded = name;
  }

  return decoded.replace(/[^\w.\-[\]]/g, '_').slice(0, 40);
}

/** Names of request headers whose values a log or page must never show. */
export const SECRET_HEADER_NAMES: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'sec-websocket-protocol',
];
