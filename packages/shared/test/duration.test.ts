import {
  DEFAULT_TOKEN_TTL,
  ErrorCodes,
  formatDuration,
  parseDuration,
  PortholeError,
} from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { thrownBy } from './thrown-by.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['30s', 30_000],
    ['5m', 300_000],
    ['12h', 43_200_000],
    ['30d', 2_592_000_000],
    ['0s', 0],
    ['1.5s', 1_500],
    ['0.25h', 900_000],
    ['1.5ms', 2],
  ])('reads %j as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['45', 45_000],
    ['0', 0],
    ['2.5', 2_500],
  ])('reads the bare number %j as seconds', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('allows spaces around the number and the unit', () => {
    expect(parseDuration(' 10 m ')).toBe(600_000);
  });

  it('reads the default token lifetime as 30 days', () => {
    expect(parseDuration(DEFAULT_TOKEN_TTL)).toBe(30 * 86_400_000);
  });

  it.each([
    '',
    ' ',
    'abc',
    'ms',
    '10x',
    '10M',
    '10 sec',
    '-5s',
    '+5s',
    '1e3',
    '.5s',
    '5.s',
    '1h30m',
    '5 5s',
    '0x10',
    'Infinity',
    'NaN',
    '1,5s',
  ])('refuses %j with INVALID_OPTION', (text) => {
    const err = thrownBy(() => parseDuration(text));

    expect(err).toBeInstanceOf(PortholeError);
    expect(err).toMatchObject({ code: ErrorCodes.INVALID_OPTION });
  });

  it('names the option in its error message', () => {
    const err = thrownBy(() => parseDuration('soon', '--ttl'));

    expect(err).toBeInstanceOf(PortholeError);
    expect((err as PortholeError).message).toContain('--ttl');
    expect((err as PortholeError).message).toContain('soon');
  });
});

describe('parseDuration within bounds', () => {
  it('accepts both ends of the range it is given', () => {
    expect(parseDuration('1m', '--ttl', { min: 60_000, max: 3_600_000 })).toBe(60_000);
    expect(parseDuration('1h', '--ttl', { min: 60_000, max: 3_600_000 })).toBe(3_600_000);
  });

  it('refuses a value above the maximum, naming the maximum', () => {
    const err = thrownBy(() => parseDuration('100d', '--hold', { max: 900_000 }));

    expect(err).toMatchObject({
      code: ErrorCodes.INVALID_OPTION,
      message: '--hold "100d" is too long: at most 15m',
    });
  });

  it('refuses a value below the minimum, naming the minimum', () => {
    const err = thrownBy(() => parseDuration('0', '--ttl', { min: 60_000 }));

    expect(err).toMatchObject({
      code: ErrorCodes.INVALID_OPTION,
      message: '--ttl "0" is too short: at least 1m',
    });
  });

  it('keeps its own ten-year ceiling when a larger maximum is asked for', () => {
    expect(() => parseDuration('4000d', 'x', { max: Number.MAX_SAFE_INTEGER })).toThrow(
      'at most 3650d',
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [900_000, '15m'],
    [60_000, '1m'],
    [90_000, '90s'],
    [86_400_000, '1d'],
    [1_500, '1500ms'],
    [0, '0ms'],
  ])('writes %i ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
