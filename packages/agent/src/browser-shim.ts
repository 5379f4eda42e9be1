import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * Names under which tools look for a browser. `BROWSER` covers Python's webbrowser (az,
 * gcloud), Rust's webbrowser (Codex) and the `open` package's fallback; the others are what
 * xdg-utils, Debian and the `open` package run when no browser variable is set.
 */
export const BROWSER_COMMANDS = ['xdg-open', 'x-www-browser', 'www-browser', 'sensible-browser'];

const BROWSER_SCRIPT = 'porthole-browser';

function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The pages among a browser stand-in's arguments. Callers add words of their own: a `BROWSER`
 * entry may carry `--new-tab`, some tools give xdg-open more than the URL, and
 * sensible-browser passes on whatever it got. Each http or https URL is a page; the rest,
 * options included, is ignored: a browser on another machine can open nothing else (a file
 * here), and a file:, javascript: or custom-scheme URL could start a program there.
 */
export function pagesToOpen(args: readonly string[]): string[] {
  return args.filter((arg) => {
    try {
      const { protocol } = new URL(arg);

      return protocol === 'http:' || protocol === 'https:';
    } catch {
      return false;
    }
  });
}

/** A folder of tiny browser stand-ins that all run `porthole-agent open` with their arguments. */
export interface BrowserShim {
  dir: string;
  /** The environment a wrapped command gets: BROWSER set, the shims first on PATH. */
  env: NodeJS.ProcessEnv;
  remove(): Promise<void>;
}

export async function createBrowserShim(
  agentCli: string,
  env: NodeJS.ProcessEnv,
): Promise<BrowserShim> {
  const dir = await mkdtemp(join(tmpdir(), 'porthole-browser-'));

  // A command run as another user than the agent (so that it cannot read the agent's token)
  // still needs its browser; the stand-ins hold nothing but two paths.
  await chmod(dir, 0o755);
  const script = `#!/bin/sh\nexec ${quote(process.execPath)} ${quote(agentCli)} open "$@"\n`;

  for (const name of [BROWSER_SCRIPT, ...BROWSER_COMMANDS]) {
    await writeFile(join(dir, name), script);
    await chmod(join(dir, name), 0o755);
  }

  return {
    dir,
    env: {
      ...env,
      BROWSER: join(dir, BROWSER_SCRIPT),
      PATH: [dir, env['PATH'] ?? ''].filter((p) => p !== '').join(delimiter),
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
