import { LOG_REDACT_PATHS } from '@porthole/shared';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

/**
 * The agent's logger. It writes to stderr: under `porthole-agent run`, stdout belongs to the
 * wrapped command. A terminal gets readable lines, anything else JSON.
 */
export function createLogger(
  level: string,
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  const options = {
    level: level as LevelWithSilent,
    base: { name: 'porthole-agent' },
    // Backstop only: the agent logs allow-listed fields, never a token or a URL's query.
    redact: { paths: [...LOG_REDACT_PATHS], censor: '[redacted]' },
  };

  if ((destination as NodeJS.WriteStream).isTTY === true) {
    return pino(
      options,
      pretty({ destination, translateTime: 'HH:MM:ss', ignore: 'pid,hostname,name', sync: true }),
    );
  }

  return pino(options, destination);
}

export type { Logger };
