import {
  AUTH_FAILURE_WINDOW_MS,
  MAX_AUTH_FAILURES,
  MAX_TRACKED_AUTH_ADDRESSES,
} from '@porthole/shared';

interface Failures {
  count: number;
  since: number;
  blockedUntil: number;
}

/**
 * Counts failed agent authentications per address. Past the limit an address is told to wait
 * (429) for the rest of the window: guessing tokens gets slow, while a valid token is always
 * accepted, so a legitimate agent behind the same address is never locked out.
 */
export class AuthFailureLimiter {
  readonly #failures = new Map<string, Failures>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Records a failure; returns how many seconds the address must now wait (0: none). */
  fail(address: string): number {
    const now = this.#now();
    let entry = this.#failures.get(address);

    // A new window starts once the old one is over and any wait it imposed has run out.
    if (
      entry === undefined ||
      (now - entry.since > AUTH_FAILURE_WINDOW_MS && now >= entry.blockedUntil)
    ) {
      entry = { count: 0, since: now, blockedUntil: 0 };
    }

    entry.count += 1;

    if (entry.count > MAX_AUTH_FAILURES && entry.blockedUntil === 0) {
      entry.blockedUntil = now + AUTH_FAILURE_WINDOW_MS;
    }

    // Re-inserting keeps the map in age order, so the oldest entry is the first to go.
    this.#failures.delete(address);
    this.#failures.set(address, entry);
    this.#trim();

    return Math.max(0, Math.ceil((entry.blockedUntil - now) / 1000));
  }

  #trim(): void {
    while (this.#failures.size > MAX_TRACKED_AUTH_ADDRESSES) {
      const oldest = this.#failures.keys().next().value;

      if (oldest === undefined) return;
      this.#failures.delete(oldest);
    }
  }
}
