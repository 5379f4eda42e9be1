import { BRIDGE_SCAN_MS } from '@porthole/shared';

import { addressScope, containerBridgeAddresses } from './listen-addresses.js';
import type { Logger } from './logger.js';
import { messages } from './messages.js';

/**
 * Looks for container bridges every BRIDGE_SCAN_MS and has the relay listen on each new one:
 * Docker may start after the relay (docker0 appears), and a Compose project creates its own
 * bridge when it first comes up. `known` holds the addresses listened on and grows with them.
 * Returns a function that stops looking.
 */
export function watchBridges(
  known: string[],
  listenOn: (address: string) => Promise<void>,
  log: Logger,
): () => void {
  const timer = setInterval(() => {
    for (const address of containerBridgeAddresses()) {
      // Only private addresses, as for bridges found at start: a public one needs --host.
      if (known.includes(address) || addressScope(address) !== 'private') continue;

      // Noted before it is tried, so that a bridge the relay cannot listen on is reported once.
      known.push(address);
      listenOn(address).catch((err: Error) => {
        log.warn({ host: address }, messages.bridgeNotListened(address, err.message));
      });
    }
  }, BRIDGE_SCAN_MS);

  timer.unref();

  return () => clearInterval(timer);
}
