export { defaultKeyFile, loadOrCreateRelayKey, type RelayKey } from './key-file.js';
export { createLogger } from './logger.js';
export { type Relay, type RelayOptions, startRelay } from './relay.js';
