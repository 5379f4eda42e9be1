import { readFileSync, statSync } from 'node:fs';

/**
 * Names the network namespace this process runs in, on Linux: the kernel's boot id and the
 * namespace's inode. Two processes see the same name only when they share one loopback, such
 * as an agent started on the relay's own machine or in a container with `--network host`.
 * Undefined where there is no /proc to ask (macOS, Windows).
 */
export function networkNamespaceId(): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const { dev, ino } = statSync('/proc/self/ns/net');

    return `${boot}/${dev}/${ino}`;
  } catch {
    return undefined;
  }
}
