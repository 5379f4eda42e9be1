import type { RelayProcess } from './relay.js';

/** The line a relay started with `--no-open` prints for each page it would open. */
export const OPEN_PROMPT = /Open this page to continue: (\S+)/;

/** The next page the relay asks to open, other than those in `taken`. */
export async function promptedUrl(relay: RelayProcess, taken: string[] = []): Promise<string> {
  const urlOf = (line: string) => OPEN_PROMPT.exec(line)?.[1];
  const line = await relay.program.waitForLine((l) => {
    const url = urlOf(l);
    return url !== undefined && !taken.includes(url);
  });

  return urlOf(line) ?? '';
}

/** The `state` an authorization URL carries ('' without one). */
export function stateOf(url: string): string {
  return new URL(url).searchParams.get('state') ?? '';
}

/** The `redirect_uri` an authorization URL carries. */
export function redirectOf(url: string): URL {
  return new URL(new URL(url).searchParams.get('redirect_uri') ?? '');
}
