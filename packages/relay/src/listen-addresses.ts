import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** How far an address reaches. */
export type AddressScope = 'loopback' | 'private' | 'public';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

const privateRanges = new BlockList();
privateRanges.addSubnet('10.0.0.0', 8, 'ipv4');
privateRanges.addSubnet('172.16.0.0', 12, 'ipv4');
privateRanges.addSubnet('192.168.0.0', 16, 'ipv4');
privateRanges.addSubnet('169.254.0.0', 16, 'ipv4');
privateRanges.addSubnet('100.64.0.0', 10, 'ipv4');
privateRanges.addSubnet('fc00::', 7, 'ipv6');
privateRanges.addSubnet('fe80::', 10, 'ipv6');

/**
 * Classifies a listen address. A wildcard (0.0.0.0, ::) listens on every interface,
 * public ones included, so it counts as public.
 */
export function addressScope(address: string): AddressScope {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';

  if (loopback.check(address, family)) return 'loopback';
  if (privateRanges.check(address, family)) return 'private';

  return 'public';
}

// Interface names of the bridges container engines create: Docker's default bridge and its
// user-defined networks, Podman's, and libvirt's. host.docker.internal with host-gateway
// resolves to the address of one of these.
const BRIDGE_NAME = /^(docker\d+|br-[0-9a-f]+|podman\d+|cni-podman\d+)$/;

/** IPv4 addresses of the local container bridges (none on macOS and Windows). */
export function containerBridgeAddresses(): string[] {
  const found: string[] = [];

  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (!BRIDGE_NAME.test(name)) continue;

    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) found.push(address.address);
    }
  }

  return found;
}

/** `host:port` with IPv6 addresses bracketed, as in a URL. */
export function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}
