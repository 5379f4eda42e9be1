// Summaries of repeated measurements.

/** The p-th percentile (0–100) of `values`, nearest rank; NaN for no values. */
export function percentile(values, p) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);

  if (sorted.length === 0) return NaN;

  const rank = Math.ceil((p / 100) * sorted.length);

  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** The median of `values` (mean of the middle two for an even count); NaN for no values. */
export function median(values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;

  if (n === 0) return NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/**
 * Half the interquartile range of `values` relative to their median, as a fraction: 0.05 is
 * ±5 %. Quartiles, not the full range, so that one disturbed round does not swamp the figure.
 */
export function relativeSpread(values) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const mid = median(sorted);

  if (sorted.length < 2 || !(mid > 0)) return NaN;
  return (quantile(sorted, 0.75) - quantile(sorted, 0.25)) / 2 / mid;
}

// Linear interpolation between the closest ranks of sorted values.
function quantile(sorted, q) {
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);

  return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
}

/** The sum of the finite `values`. */
export function sum(values) {
  return values.filter(Number.isFinite).reduce((a, b) => a + b, 0);
}
