/** The agent's words for users, in one place. None of them quotes a token or a URL's query. */
export const messages = {
  connecting: (url: string) => `connecting to the relay at ${url}`,
  connected: (name: string, url: string) => `connected to the relay at ${url} as "${name}"`,
  unreachable: (url: string, reason: string, delayMs: number) =>
    `relay at ${url} not reachable (${reason}); trying again in ${(delayMs / 1000).toFixed(1)} s`,
  relayStopping: (delayMs: number) =>
    `the relay is shutting down; reconnecting in ${(delayMs / 1000).toFixed(1)} s, to the ` +
    'relay that takes its place',
  lost: (reason: string, delayMs: number) =>
    `lost the relay (${reason}); reconnecting in ${(delayMs / 1000).toFixed(1)} s`,
  mirrored: (containerPort: number, addresses: string[]) =>
    `port ${containerPort} is mirrored on the host at ${addresses.join(', ')}`,
  mirrorBusy: (containerPort: number, hostPort: number) =>
    `port ${containerPort} is not mirrored: host port ${hostPort} is already in use on the ` +
    "relay's machine",
  mirrorFailed: (containerPort: number, hostPort: number, detail: string) =>
    `port ${containerPort} is not mirrored: the relay cannot listen on host port ${hostPort} (${detail})`,
  listening: (port: number, addresses: string[]) =>
    `port ${port} is listening in this container → mirrored on the host at ${addresses.join(', ')}`,
  loginStarted: (port: number) =>
    `a login will call back on port ${port}: asking the relay to listen there and open the page`,
  openWhileAway: () =>
    'the relay is not connected: the page opens once it is (or copy the URL from the tool)',
  handoffTaken: () =>
    'another porthole agent in this container already receives browser requests; this one ' +
    'only carries ports',
  forbidden: (port: number) =>
    `refused a stream to port ${port}: it is not a port this agent carries`,
  refused: (port: number) => `nothing is listening on port ${port} in this container`,
  relayBrokeProtocol: (detail: string) => `the relay broke the protocol: ${detail}`,
  internalError: (detail: string) => `unexpected failure, reconnecting: ${detail}`,
  unprovenError: (code: string) =>
    `the server reported ${code} before proving it is the relay; not trusting its message`,
  relayError: (code: string, text: string) => `relay says: ${text} (${code})`,
  sameNetwork: () =>
    "this agent runs in the relay's own network (on the relay's machine, or in a container " +
    'with --network host), where the browser reaches its ports as they are: it carries only ' +
    '--map ports under another number. Start it inside a container with a network of its own',
  // A path names one file; a bare name was looked up on PATH, as a shell says it.
  commandNotFound: (file: string, isPath: boolean) =>
    isPath ? `${file}: no such file or directory` : `${file}: command not found`,
  commandNotStarted: (file: string, code: string) =>
    code === 'EACCES' ? `${file}: permission denied` : `${file}: cannot be run (${code})`,
  openUsage: () => 'nothing to open: give an http or https URL (usage: porthole-agent open URL...)',
} as const;

/** What the user should do when the relay refuses the token. */
export function tokenAdvice(code: string): string {
  const what =
    code === 'PORTHOLE_ERR_TOKEN_EXPIRED'
      ? 'the token has expired'
      : code === 'PORTHOLE_ERR_TOKEN_MISSING'
        ? 'no token was sent'
        : code === 'PORTHOLE_ERR_TOKEN_INVALID'
          ? 'the token is damaged or is not a porthole agent token'
          : `the relay refused the token (${code})`;

  return (
    `${what}. Mint a new one on the relay's machine with "porthole-relay token --name NAME" ` +
    'and pass it with --token, --token-file or PORTHOLE_TOKEN'
  );
}
