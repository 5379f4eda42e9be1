import { ErrorCodes, PortholeError } from './errors.js';

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['', '0', 'false', 'no', 'off']);

/**
 * Reads an on/off environment variable such as PORTHOLE_INSECURE. `0`, `false`, `no`, `off`
 * and an empty value mean off: a variable set to 0 must never grant what its flag grants.
 */
export function envFlag(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env[name];

  if (value === undefined) return false;

  const normal = value.trim().toLowerCase();

  if (TRUE.has(normal)) return true;
  if (FALSE.has(normal)) return false;

  throw new PortholeError(
    ErrorCodes.INVALID_OPTION,
    `${name}="${value.slice(0, 20)}" is neither on (1, true, yes) nor off (0, false, no)`,
  );
}
