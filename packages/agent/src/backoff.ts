import { RECONNECT_MAX_DELAY_MS, RECONNECT_MIN_DELAY_MS } from '@porthole/shared';

/**
 * Delay before redial number `attempt` (0-based): exponential with full jitter, between the
 * minimum and a ceiling that doubles with each failure up to the maximum. Jitter keeps many
 * agents from redialling a restarted relay in lockstep.
 */
export function reconnectDelay(
  attempt: number,
  random: () => number = Math.random,
  min = RECONNECT_MIN_DELAY_MS,
  max = RECONNECT_MAX_DELAY_MS,
): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));

  return Math.round(min + random() * (ceiling - min));
}
