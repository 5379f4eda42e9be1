import { existsSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Program } from './processes.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BUNDLE_SCRIPT = join(REPO, 'scripts', 'bundle-agent.mjs');

/**
 * Modules the bundle may ask for that are not Node's own: ws loads these native speed-ups when
 * they are installed and goes on without them (inside a try) when they are not.
 */
export const OPTIONAL_MODULES = ['bufferutil', 'utf-8-validate'];

/** The one-file agent as the build makes it. */
export interface AgentBundle {
  file: string;
  bytes: number;
}

/**
 * Builds the one-file agent into `dir` with the build's own script, from the compiled packages,
 * so that a test exercises what `pnpm build` ships even when only `tsc -b` ran before it.
 */
export async function bundleAgentInto(dir: string): Promise<AgentBundle> {
  const file = join(dir, 'porthole-agent.mjs');
  const build = new Program(process.execPath, [BUNDLE_SCRIPT, file]);

  if ((await build.exited) !== 0) throw new Error(`bundling failed:\n${build.output}`);

  const bytes = Number(/, (\d+) bytes/.exec(build.output)?.[1]);

  return { file, bytes };
}

/** Every module name the bundle imports or requires that is not one of Node's own. */
export function foreignModules(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  // Minified, require() goes by a short name. Any function that is handed one of Node's own
  // modules somewhere is taken for require, and everything it is handed counts.
  const calls = [...text.matchAll(/(?<![\w$.])([\w$]+)\(\s*["']([^"']+)["']\s*\)/g)];
  const requires = new Set(
    calls.filter(([, , name]) => name !== undefined && isBuiltin(name)).map(([, fn]) => fn),
  );
  const names = [
    ...[...text.matchAll(/\bimport\s*[^;()]*?\bfrom\s*["']([^"']+)["']/g)].map((m) => m[1]),
    ...[...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]),
    ...calls.filter(([, fn]) => requires.has(fn ?? '')).map((m) => m[2]),
  ];

  return [...new Set(names)]
    .filter((name): name is string => name !== undefined && !isBuiltin(name))
    .sort();
}

/** A node_modules folder in `dir` or above it, which would let a missing module resolve. */
export function nodeModulesAbove(dir: string): string | undefined {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, 'node_modules'))) return join(at, 'node_modules');
    if (dirname(at) === at) return undefined;
  }
}
