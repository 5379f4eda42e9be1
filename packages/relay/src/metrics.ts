import { CALLBACK_RESULTS, type ByteCounters, type CallbackResult } from './relay-events.js';

/** What /metrics reads from the relay's state when it is scraped. */
export interface Gauges {
  agentsConnected: number;
  streamsOpen: number;
}

type Sample = [labels: Record<string, string> | null, value: number];

/**
 * The relay's counters, written out in the Prometheus text exposition format (version 0.0.4).
 * Counting is a field increment, so the hot path (bytes per chunk) costs nothing to speak of.
 */
export class RelayMetrics {
  readonly bytes: ByteCounters = { toContainer: 0, toBrowser: 0 };
  readonly #callbacks = new Map<CallbackResult, number>(CALLBACK_RESULTS.map((r) => [r, 0]));
  readonly #authFailures = new Map<string, number>();
  #bindFailures = 0;

  /** Counts a request by how it fared. */
  callback(result: CallbackResult): void {
    this.#callbacks.set(result, (this.#callbacks.get(result) ?? 0) + 1);
  }

  /** Counts a host port that a mirror could not bind; retries that fail again do not count. */
  bindFailed(): void {
    this.#bindFailures += 1;
  }

  /** Counts an agent connection refused before the upgrade. */
  authRefused(code: string): void {
    this.#authFailures.set(code, (this.#authFailures.get(code) ?? 0) + 1);
  }

  /** The exposition text. */
  render(gauges: Gauges): string {
    return [
      family('porthole_agents_connected', 'gauge', 'Agents connected now.', [
        [null, gauges.agentsConnected],
      ]),
      family('porthole_streams_open', 'gauge', 'Tunnel streams open now.', [
        [null, gauges.streamsOpen],
      ]),
      family('porthole_stream_bytes_total', 'counter', 'Bytes carried through tunnel streams.', [
        [{ direction: 'to_container' }, this.bytes.toContainer],
        [{ direction: 'to_browser' }, this.bytes.toBrowser],
      ]),
      family(
        'porthole_callbacks_total',
        'counter',
        'Requests on mirrored ports and /oauth/callback, by how they fared.',
        [...this.#callbacks].map(([result, n]) => [{ result }, n]),
      ),
      family(
        'porthole_mirror_bind_failures_total',
        'counter',
        'Times a host port could not be mirrored; a port that keeps failing counts once.',
        [[null, this.#bindFailures]],
      ),
      family(
        'porthole_auth_failures_total',
        'counter',
        'Agent connections refused before the upgrade, by error code.',
        [...this.#authFailures].map(([code, n]) => [{ code }, n]),
      ),
    ].join('');
  }
}

function family(name: string, type: string, help: string, samples: Sample[]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];

  for (const [labels, value] of samples) lines.push(`${name}${labelText(labels)} ${value}`);

  return lines.join('\n') + '\n';
}

function labelText(labels: Record<string, string> | null): string {
  if (labels === null) return '';

  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);

  return `{${pairs.join(',')}}`;
}

// The exposition format escapes backslash, double quote and line feed in label values.
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
