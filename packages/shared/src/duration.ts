import { ErrorCodes, PortholeError } from './errors.js';

const UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// Ten years: longer than any token should live, and far from float trouble.
const MAX_DURATION_MS = 10 * 365 * 86_400_000;

/**
 * The longest delay node's timers keep: setTimeout stores it in a signed 32-bit integer and
 * fires at once (with a warning) for anything longer, so a duration used as a timer must stay
 * at or below this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The range a duration option accepts, in milliseconds (both ends included). */
export interface DurationBounds {
  min?: number;
  max?: number;
}

/**
 * Reads a duration such as `30s`, `5m`, `12h`, `30d` or `250ms`; a bare number is seconds.
 * Returns milliseconds, refusing values outside `bounds` with a message that names them.
 */
export function parseDuration(
  text: string,
  what = 'duration',
  { min = 0, max = MAX_DURATION_MS }: DurationBounds = {},
): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);

  if (match === null) {
    throw invalid(
      `${what} "${text}" is not a duration: use a number with ms, s, m, h or d (30s, 12h, 30d)`,
    );
  }

  const amount = Number(match[1]);
  const unit = UNITS_MS[match[2] ?? 's'] ?? 1000;
  const ms = Math.round(amount * unit);
  const shown = text.trim().slice(0, 40);
  const longest = Math.min(max, MAX_DURATION_MS);

  if (!Number.isSafeInteger(ms) || ms > longest) {
    throw invalid(`${what} "${shown}" is too long: at most ${formatDuration(longest)}`);
  }

  if (ms < min) {
    throw invalid(`${what} "${shown}" is too short: at least ${formatDuration(min)}`);
  }

  return ms;
}

/** Writes milliseconds in the largest unit that divides them (`90000` → `90s`, `3600000` → `1h`). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS_MS[unit] as number;

    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }

  return `${ms}ms`;
}

function invalid(message: string): PortholeError {
  return new PortholeError(ErrorCodes.INVALID_OPTION, message);
}
