import { AUTH_FAILURE_WINDOW_MS, MAX_AUTH_FAILURES } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { AuthFailureLimiter, type FailureVerdict } from '../src/auth-limiter.js';

// Fails `times` times from `address` and returns the verdicts.
function failures(limiter: AuthFailureLimiter, address: string, times: number): FailureVerdict[] {
  return Array.from({ length: times }, () => limiter.fail(address));
}

describe('AuthFailureLimiter', () => {
  it('lets an address fail up to the limit without a wait', () => {
    const limiter = new AuthFailureLimiter(() => 0);

    for (const verdict of failures(limiter, 'a', MAX_AUTH_FAILURES)) expect(verdict.wait).toBe(0);
  });

  it('makes an address wait for a window once it failed past the limit', () => {
    const limiter = new AuthFailureLimiter(() => 0);

    failures(limiter, 'a', MAX_AUTH_FAILURES);

    expect(limiter.fail('a').wait).toBe(AUTH_FAILURE_WINDOW_MS / 1000);
    expect(limiter.fail('b').wait).toBe(0);
  });

  it('keeps the wait it announced, even when the counting window ends first', () => {
    let now = 0;
    const limiter = new AuthFailureLimiter(() => now);

    failures(limiter, 'a', MAX_AUTH_FAILURES);
    now = AUTH_FAILURE_WINDOW_MS - 1_000;
    expect(limiter.fail('a').wait).toBeGreaterThan(0);
    now += 2_000;
    expect(limiter.fail('a').wait).toBeGreaterThan(0);
  });

  it('starts afresh once the wait is over', () => {
    let now = 0;
    const limiter = new AuthFailureLimiter(() => now);

    failures(limiter, 'a', MAX_AUTH_FAILURES + 1);
    now = 3 * AUTH_FAILURE_WINDOW_MS;
    expect(limiter.fail('a')).toMatchObject({ wait: 0, count: 1 });
  });

  it('logs each failure up to the limit, then only the one that crossed it', () => {
    const limiter = new AuthFailureLimiter(() => 0);
    const logged = failures(limiter, 'a', 1000).map((v) => v.log);

    expect(logged.slice(0, MAX_AUTH_FAILURES + 1).every(Boolean)).toBe(true);
    expect(logged.filter(Boolean)).toHaveLength(MAX_AUTH_FAILURES + 1);
  });

  it('tells how many failures went unlogged with the first line of the next window', () => {
    let now = 0;
    const limiter = new AuthFailureLimiter(() => now);

    failures(limiter, 'a', MAX_AUTH_FAILURES + 1 + 500);
    now = 2 * AUTH_FAILURE_WINDOW_MS;

    expect(limiter.fail('a')).toMatchObject({ log: true, unlogged: 500 });
    expect(limiter.fail('a')).toMatchObject({ log: true, unlogged: 0 });
  });

  it('counts and quiets each address on its own', () => {
    const limiter = new AuthFailureLimiter(() => 0);

    failures(limiter, 'a', 100);

    expect(failures(limiter, 'b', MAX_AUTH_FAILURES).every((v) => v.log && v.wait === 0)).toBe(
      true,
    );
  });
});
