/**
 * The relay's words for users: every log message and page text in one place, so that they
 * stay consistent and none of them quotes a secret.
 */
import { hostPort } from './listen-addresses.js';

export const messages = {
  listening: (url: string) => `relay listening on ${url}`,
  privateHost: (address: string) =>
    `listening on ${address}, a private network address: anyone on that network can reach ` +
    'the relay (agents still need a token), and traffic is not encrypted without --tls-cert',
  keyCreated: (file: string) => `created relay key ${file}`,
  agentConnected: (name: string) => `container "${name}" connected`,
  agentReplaced: (name: string) =>
    `container "${name}" connected again: the newer connection replaces the older one`,
  agentDisconnected: (name: string) => `container "${name}" disconnected`,
  agentSilent: (name: string) =>
    `container "${name}" stopped answering pings: dropping its connection`,
  internalError: (name: string) =>
    `closed the connection of container "${name}" after an unexpected failure`,
  agentRefused: (code: string) => `refused an agent connection (${code})`,
  agentProtocolError: (name: string, code: string) =>
    `closed the connection of container "${name}": it broke the protocol (${code})`,
  mirrorOpened: (name: string, containerPort: number, addresses: string[]) =>
    `container "${name}" port ${containerPort} → mirrored on ${addresses.join(', ')}`,
  mirrorBusy: (name: string, hostPort: number, containerPort: number) =>
    `cannot mirror port ${containerPort} of container "${name}": host port ${hostPort} is ` +
    'already in use on this machine',
  mirrorFailed: (name: string, hostPort: number) =>
    `cannot mirror host port ${hostPort} for container "${name}"`,
  mirrorClosed: (hostPort: number) => `stopped mirroring port ${hostPort}`,
  streamRefused: (name: string, port: number) =>
    `container "${name}" has nothing listening on port ${port}`,
  noAgentForPort: (port: number) => `a request on port ${port} found no connected container`,
  shuttingDown: () => 'relay shutting down',
} as const;

/** Addresses of a mirrored port as a user types them. */
export function mirrorAddresses(hosts: readonly string[], port: number): string[] {
  return hosts.map((host) => hostPort(host, port));
}
