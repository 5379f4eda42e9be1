import { ErrorCodes, MAX_TIMER_MS } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { MAX_HOLD_MS, parseHold, parseTtl } from '../src/options.js';

describe('parseHold', () => {
  it.each([
    ['0', 0],
    ['30s', 30_000],
    ['15m', 900_000],
  ])('accepts %j', (text, ms) => {
    expect(parseHold(text)).toBe(ms);
  });

  // 100 days is past what setTimeout can count: unchecked, the hold would end at once.
  it.each(['100d', '25d', '16m', '1h'])('refuses %j as too long, naming the limit', (text) => {
    expect(() => parseHold(text)).toThrow(`--hold "${text}" is too long: at most 15m`);
  });

  it('keeps the limit within what a node timer can count', () => {
    expect(MAX_HOLD_MS).toBeLessThanOrEqual(MAX_TIMER_MS);
  });
});

describe('parseTtl', () => {
  it.each([
    ['1m', 60_000],
    ['30d', 30 * 86_400_000],
    ['3650d', 3650 * 86_400_000],
  ])('accepts %j', (text, ms) => {
    expect(parseTtl(text)).toBe(ms);
  });

  it.each(['0', '0s', '59s', '500ms'])('refuses %j as too short', (text) => {
    expect(() => parseTtl(text)).toThrow(`--ttl "${text}" is too short: at least 1m`);
  });

  it('allows a lifetime longer than any timer, since a token only carries a date', () => {
    expect(parseTtl('365d')).toBeGreaterThan(MAX_TIMER_MS);
  });

  it('refuses more than ten years with INVALID_OPTION', () => {
    expect(() => parseTtl('3651d')).toThrow(
      expect.objectContaining({ code: ErrorCodes.INVALID_OPTION }),
    );
  });
});
