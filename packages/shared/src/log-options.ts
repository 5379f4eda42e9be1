/** The log levels both commands accept for --log-level, most severe first. */
export const LOG_LEVELS: readonly string[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

/**
 * Log fields censored as a second guard behind the allow-listed fields that the relay and the
 * agent log: if a secret ever lands under one of these paths, it is not written.
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers',
  '*.headers',
  'req.headers',
  'query',
  '*.query',
  'body',
  '*.body',
  'url',
  '*.url',
];
