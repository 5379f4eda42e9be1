import type { Logger } from './logger.js';
import { BrowserHandoff } from './browser-handoff.js';
import { messages } from './messages.js';
import { PortWatcher } from './port-watcher.js';
import { TunnelClient, type TunnelClientOptions } from './tunnel-client.js';

export interface AgentOptions extends TunnelClientOptions {
  /** Announce the container's listening ports as they open and close. */
  watch: boolean;
  /** Which ports the watcher may announce. */
  watchPorts: (port: number) => boolean;
  logger: Logger;
}

/**
 * The whole agent: the tunnel to the relay, the port watcher that feeds it, and the socket on
 * which `porthole-agent open` hands over URLs.
 */
export class Agent {
  readonly client: TunnelClient;
  readonly #watcher: PortWatcher | undefined;
  readonly #handoff: BrowserHandoff;
  readonly #log: Logger;
  #markStarted: () => void = () => undefined;
  /** Resolves once `porthole-agent open` can reach this agent and the first port scan is done. */
  readonly started = new Promise<void>((resolve) => {
    this.#markStarted = resolve;
  });

  constructor(options: AgentOptions) {
    this.#log = options.logger;
    this.#watcher = options.watch
      ? new PortWatcher(options.watchPorts, (ports) => this.client.setListeningPorts(ports))
      : undefined;
    this.client = new TunnelClient({
      ...options,
      ...(this.#watcher === undefined
        ? {}
        : { rescan: () => this.#watcher?.refresh() ?? Promise.resolve([]) }),
    });
    this.#handoff = new BrowserHandoff((url) => this.client.openUrl(url));
  }

  /** Runs until stopped, or until the tunnel fails for good (rejects). */
  async run(onConnected?: () => void): Promise<void> {
    if (!(await this.#handoff.listen())) {
      this.#log.warn(messages.handoffTaken());
    }

    try {
      // The first report to the relay must be whole: a port missing from it would be closed.
      await this.#watcher?.start();
      this.#markStarted();
      await this.client.run(onConnected);
    } finally {
      this.#markStarted();
      this.#watcher?.stop();
      this.#handoff.close();
    }
  }

  stop(): void {
    this.client.stop();
  }
}
