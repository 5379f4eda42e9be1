/**
 * The relay's words for users: every log message and page text in one place, so that they
 * stay consistent and none of them quotes a secret.
 */
import type { PortSource } from '@porthole/shared';

import { hostPort } from './listen-addresses.js';

export const messages = {
  listening: (url: string) => `relay listening on ${url}`,
  cannotListen: (address: string, code: string) =>
    code === 'EADDRINUSE'
      ? `cannot listen: port already in use at ${address} (another relay?); choose another with --port`
      : `cannot listen on ${address} (${code})`,
  privateHost: (address: string) =>
    `listening on ${address}, a private network address: anyone on that network can reach ` +
    'the relay (agents still need a token), and traffic is not encrypted without --tls-cert',
  keyCreated: (file: string) => `created relay key ${file}`,
  agentConnected: (name: string) => `container "${name}" connected`,
  agentReplaced: (name: string) =>
    `container "${name}" connected again: the newer connection replaces the older one`,
  agentDisconnected: (name: string, holdMs: number) =>
    `container "${name}" disconnected; its ports stay open ${Math.round(holdMs / 1000)} s for it to return`,
  agentReturned: (name: string) => `container "${name}" reconnected`,
  agentGone: (name: string) => `container "${name}" did not return: closed its ports`,
  agentSilent: (name: string) =>
    `container "${name}" stopped answering pings: dropping its connection`,
  internalError: (name: string) =>
    `closed the connection of container "${name}" after an unexpected failure`,
  agentRefused: (code: string) => `refused an agent connection (${code})`,
  agentProtocolError: (name: string, code: string) =>
    `closed the connection of container "${name}": it broke the protocol (${code})`,
  mirrorOpened: (name: string, containerPort: number, addresses: string[], source: PortSource) =>
    source === 'listening'
      ? `container "${name}" is listening on ${containerPort} → mirrored on ${addresses.join(', ')}`
      : source === 'login'
        ? `container "${name}" expects a login callback on ${containerPort} → mirrored on ${addresses.join(', ')}`
        : `container "${name}" port ${containerPort} → mirrored on ${addresses.join(', ')}`,
  mirrorBusy: (name: string, hostPort: number, containerPort: number) =>
    `cannot mirror port ${containerPort} of container "${name}": host port ${hostPort} is ` +
    'already in use on this machine',
  mirrorFailed: (name: string, hostPort: number) =>
    `cannot mirror host port ${hostPort} for container "${name}"`,
  mirrorClosed: (hostPort: number) => `stopped mirroring port ${hostPort}`,
  streamRefused: (name: string, port: number) =>
    `container "${name}" has nothing listening on port ${port}`,
  streamForbidden: (name: string, port: number) =>
    `container "${name}" refuses to carry port ${port} (not listening, mapped or awaiting a login)`,
  noAgentForPort: (port: number) => `a request on port ${port} found no container to go to`,
  agentAway: (name: string, holdMs: number) =>
    `container "${name}" did not reconnect within ${Math.round(holdMs / 1000)} s: request not delivered`,
  agentHeld: (name: string, holdMs: number) =>
    `container "${name}" is reconnecting: holding its requests for up to ${Math.round(holdMs / 1000)} s`,
  wrongHost: (port: number) =>
    `refused a request on port ${port} addressed to another host name (DNS rebinding?)`,
  carried: (what: string, name: string, port: number) =>
    `${what} → container "${name}" port ${port}`,
  openRequested: (name: string, site: string) =>
    `container "${name}" asks to open a page on ${site}`,
  openRefused: (name: string) =>
    `container "${name}" asked to open something that is not a web page`,
  openFailed: () => 'could not start a browser here: open the page above by hand',
  bridgeNotListened: (address: string, detail: string) =>
    `found the container bridge ${address} but cannot listen on it: ${detail}`,
  statusRemotePeer: () =>
    'refused the status page or API to a caller that is not on this machine (a container?)',
  statusOnlyThisMachine: (url: string) =>
    "porthole's status page, API and metrics answer only to the machine the relay runs on: " +
    `open ${url} in a browser there\n`,
  statusWrongHost: () =>
    'refused a request for the status page addressed to another host name (DNS rebinding?)',
  statusOnlyHere: () =>
    "porthole's status page answers only to localhost, 127.0.0.1, [::1] and the relay's own addresses\n",
  statusForeignOrigin: () =>
    "refused to open a login page again: the request did not come from this machine's status page",
  statusReopen: (name: string) =>
    `opening the login page of container "${name}" again, as asked on the status page`,
  shuttingDown: (streams: number, graceMs: number) =>
    streams > 0 && graceMs > 0
      ? `relay shutting down: letting ${streams} streams finish (up to ${Math.round(graceMs / 1000)} s)`
      : 'relay shutting down',
} as const;

/** Addresses of a mirrored port as a user types them. */
export function mirrorAddresses(hosts: readonly string[], port: number): string[] {
  return hosts.map((host) => hostPort(host, port));
}
