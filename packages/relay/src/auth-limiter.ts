import {
  AUTH_FAILURE_WINDOW_MS,
  MAX_AUTH_FAILURES,
  MAX_TRACKED_AUTH_ADDRESSES,
} from '@porthole/shared';

interface Failures {
  count: number;
  since: number;
  blockedUntil: number;
  /** Failures past the limit in this window, which were not logged one by one. */
  unlogged: number;
}

/** What the relay does about one failed authentication. */
export interface FailureVerdict {
  /** Seconds the address is asked to wait before it tries again (0: none). */
  wait: number;
  /** Whether this failure gets a log line: each one up to the limit, then one per window. */
  log: boolean;
  /** Failures from this address in the current window, this one included. */
  count: number;
  /** Failures of the address's previous window that went unlogged (told with the next line). */
  unlogged: number;
}

/**
 * Counts failed agent authentications per address, to bound what a stream of bad tokens costs
 * in log lines. It cannot make guessing slower, and need not: a token is an Ed25519
 * signature, which no number of tries forges. Past the limit the address is told to wait
 * (429 with Retry-After), and its failures are logged once per window instead of one by one.
 * Every attempt is still verified, so a valid token is always accepted: agents behind the same
 * address (on Docker Desktop every container reaches the host from the same one) are never
 * locked out.
 */
export class AuthFailureLimiter {
  readonly #failures = new Map<string, Failures>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Records a failure from `address` and says what to do about it. */
  fail(address: string): FailureVerdict {
    const now = this.#now();
    const old = this.#failures.get(address);
    let entry = old;
    let unlogged = 0;

    // A new window starts once the old one is over and any wait it imposed has run out.
    if (
      entry === undefined ||
      (now - entry.since > AUTH_FAILURE_WINDOW_MS && now >= entry.blockedUntil)
    ) {
      unlogged = old?.unlogged ?? 0;
      entry = { count: 0, since: now, blockedUntil: 0, unlogged: 0 };
    }

    entry.count += 1;

    let log = entry.count <= MAX_AUTH_FAILURES;

    if (entry.count > MAX_AUTH_FAILURES && entry.blockedUntil === 0) {
      entry.blockedUntil = now + AUTH_FAILURE_WINDOW_MS;
      log = true;
    } else if (!log) {
      entry.unlogged += 1;
    }

    // Re-inserting keeps the map in age order, so the oldest entry is the first to go.
    this.#failures.delete(address);
    this.#failures.set(address, entry);
    this.#trim();

    return {
      wait: Math.max(0, Math.ceil((entry.blockedUntil - now) / 1000)),
      log,
      count: entry.count,
      unlogged,
    };
  }

  #trim(): void {
    while (this.#failures.size > MAX_TRACKED_AUTH_ADDRESSES) {
      const oldest = this.#failures.keys().next().value;

      if (oldest === undefined) return;
      this.#failures.delete(oldest);
    }
  }
}
