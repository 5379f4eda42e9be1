import { AUTH_FAILURE_WINDOW_MS, MAX_AUTH_FAILURES } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { AuthFailureLimiter } from '../src/auth-limiter.js';

describe('AuthFailureLimiter', () => {
  it('lets an address fail up to the limit without a wait', () => {
    const limiter = new AuthFailureLimiter(() => 0);

    for (let i = 0; i < MAX_AUTH_FAILURES; i += 1) expect(limiter.fail('a')).toBe(0);
  });

  it('makes an address wait for a window once it failed past the limit', () => {
    const limiter = new AuthFailureLimiter(() => 0);

    for (let i = 0; i < MAX_AUTH_FAILURES; i += 1) limiter.fail('a');

    expect(limiter.fail('a')).toBe(AUTH_FAILURE_WINDOW_MS / 1000);
    expect(limiter.fail('b')).toBe(0);
  });

  it('keeps the wait it announced, even when the counting window ends first', () => {
    let now = 0;
    const limiter = new AuthFailureLimiter(() => now);

    for (let i = 0; i < MAX_AUTH_FAILURES; i += 1) limiter.fail('a');
    now = AUTH_FAILURE_WINDOW_MS - 1_000;
    expect(limiter.fail('a')).toBeGreaterThan(0);
    now += 2_000;
    expect(limiter.fail('a')).toBeGreaterThan(0);
  });

  it('starts afresh once the wait is over', () => {
    let now = 0;
    const limiter = new AuthFailureLimiter(() => now);

    for (let i = 0; i <= MAX_AUTH_FAILURES; i += 1) limiter.fail('a');
    now = 3 * AUTH_FAILURE_WINDOW_MS;
    expect(limiter.fail('a')).toBe(0);
  });
});
