export { reconnectDelay } from './backoff.js';
export { createLogger } from './logger.js';
export { dialLoopback } from './loopback-dialer.js';
export { PortWatcher, type PortWatcherTiming } from './port-watcher.js';
export {
  AGENT_SOFTWARE,
  agentEndpoint,
  TunnelClient,
  type TunnelClientOptions,
} from './tunnel-client.js';
