import { readFileSync } from 'node:fs';

import { ErrorCodes, PortholeError, type PortMapping } from '@porthole/shared';

function invalid(message: string): PortholeError {
  return new PortholeError(ErrorCodes.INVALID_OPTION, message);
}

function port(text: string, what: string): number {
  const value = Number(text);

  if (!/^\d+$/.test(text) || value < 1 || value > 65535) {
    throw invalid(`${what}: "${text}" is not a port number (1 to 65535)`);
  }

  return value;
}

/**
 * Reads `--map HOSTPORT:CONTAINERPORT` values (a single port maps to itself). Repeatable; the
 * environment form takes a comma-separated list.
 */
export function collectMappings(value: string, previous: PortMapping[] = []): PortMapping[] {
  const mappings = [...previous];

  for (const item of value.split(/[\s,]+/).filter((v) => v !== '')) {
    const parts = item.split(':');

    if (parts.length > 2) {
      throw invalid(`--map "${item}" must be HOSTPORT:CONTAINERPORT, e.g. 8888:8000`);
    }

    const hostPort = port(parts[0] ?? '', `--map ${item}`);
    const containerPort = parts.length === 2 ? port(parts[1] ?? '', `--map ${item}`) : hostPort;

    if (mappings.some((m) => m.hostPort === hostPort)) {
      throw invalid(`--map names host port ${hostPort} twice`);
    }

    mappings.push({ hostPort, containerPort });
  }

  return mappings;
}

/** The token from --token or --token-file (one of them, not both). */
export function resolveToken(token?: string, tokenFile?: string): string {
  if (token !== undefined && tokenFile !== undefined) {
    throw invalid('give --token or --token-file, not both');
  }

  if (tokenFile !== undefined) {
    try {
      return readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw invalid(
        `cannot read --token-file ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }

  if (token === undefined || token.trim() === '') {
    throw new PortholeError(
      ErrorCodes.TOKEN_MISSING,
      'no token: mint one on the relay machine with "porthole-relay token --name NAME" and pass ' +
        'it with --token, --token-file or PORTHOLE_TOKEN',
    );
  }

  return token.trim();
}
