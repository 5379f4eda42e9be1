import { ErrorCodes, PortholeError } from './errors.js';

const UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// Ten years: longer than any token or hold should live, and far from float trouble.
const MAX_DURATION_MS = 10 * 365 * 86_400_000;

/**
 * Reads a duration such as `30s`, `5m`, `12h`, `30d` or `250ms`; a bare number is seconds.
 * Returns milliseconds.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);

  if (match === null) {
    throw new PortholeError(
      ErrorCodes.INVALID_OPTION,
      `${what} "${text}" is not a duration: use a number with ms, s, m, h or d (30s, 12h, 30d)`,
    );
  }

  const amount = Number(match[1]);
  const unit = UNITS_MS[match[2] ?? 's'] ?? 1000;
  const ms = Math.round(amount * unit);

  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) {
    throw new PortholeError(
      ErrorCodes.INVALID_OPTION,
      `${what} "${text.slice(0, 40)}" is too long`,
    );
  }

  return ms;
}
