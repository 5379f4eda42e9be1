import type { AgentRecord } from './agent-record.js';
import { CarriedRequests, type RequestView } from './carried-requests.js';
import { type Gauges, RelayMetrics } from './metrics.js';
import type { RelayEvents, RequestLine, RequestTrace } from './relay-events.js';
import { StatusEvents } from './status-events.js';
import type { StatusSnapshot } from './status-snapshot.js';

/** Where the monitor reads the relay's state from. */
export interface MonitorSources {
  snapshot(requests: RequestView[]): StatusSnapshot;
  gauges(): Gauges;
}

/**
 * Receives what the relay's parts report and keeps it for the status page (recent requests,
 * the live feed) and for /metrics (counters).
 */
export class RelayMonitor implements RelayEvents {
  readonly metrics = new RelayMetrics();
  readonly bytes = this.metrics.bytes;
  readonly feed: StatusEvents;
  readonly #requests: CarriedRequests;
  readonly #sources: MonitorSources;

  constructor(sources: MonitorSources) {
    this.#sources = sources;
    this.feed = new StatusEvents(() => this.snapshot());
    this.#requests = new CarriedRequests({
      settled: (result) => this.metrics.callback(result),
      changed: () => this.feed.changed(),
    });
  }

  /** What the status page shows right now. */
  snapshot(): StatusSnapshot {
    return this.#sources.snapshot(this.#requests.list());
  }

  /** The /metrics text right now. */
  metricsText(): string {
    return this.metrics.render(this.#sources.gauges());
  }

  changed(): void {
    this.feed.changed();
  }

  bindFailed(): void {
    this.metrics.bindFailed();
  }

  authRefused(code: string): void {
    this.metrics.authRefused(code);
  }

  request(line: RequestLine): RequestTrace {
    return this.#requests.start(line);
  }

  /** Ends the live feeds, so that the relay's servers can close. */
  close(): void {
    this.feed.close();
  }
}

/** The gauges of /metrics, read from the agents' records. */
export function gaugesOf(records: Iterable<AgentRecord>): Gauges {
  let agentsConnected = 0;
  let streamsOpen = 0;

  for (const record of records) {
    if (record.connected) agentsConnected += 1;
    streamsOpen += record.connection?.streamCount ?? 0;
  }

  return { agentsConnected, streamsOpen };
}
