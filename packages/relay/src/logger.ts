import { LOG_REDACT_PATHS } from '@porthole/shared';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

/**
 * The relay's logger: JSON lines for machines, or readable lines when stdout is a terminal.
 */
export function createLogger(
  level: string,
  destination: NodeJS.WritableStream = process.stdout,
): Logger {
  const options = {
    level: level as LevelWithSilent,
    base: { name: 'porthole-relay' },
    redact: { paths: [...LOG_REDACT_PATHS], censor: '[redacted]' },
  };
  const tty = (destination as NodeJS.WriteStream).isTTY === true;

  if (tty) {
    return pino(
      options,
      pretty({ destination, translateTime: 'HH:MM:ss', ignore: 'pid,hostname,name', sync: true }),
    );
  }

  return pino(options, destination as NodeJS.WritableStream);
}

export type { Logger };
