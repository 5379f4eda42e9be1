// Bundles the compiled agent (packages/agent/dist/cli.js, so it runs after `tsc -b`) and all its
// dependencies into one ES module that needs Node.js 20 or later and nothing else, so that a
// container image can take the agent as a single file, without node_modules.
//
//   node scripts/bundle-agent.mjs [OUTFILE]   (default: packages/agent/dist/porthole-agent.mjs)
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENTRY = resolve(ROOT, 'packages/agent/dist/cli.js');
const DEFAULT_OUTFILE = resolve(ROOT, 'packages/agent/dist/porthole-agent.mjs');
const HASHBANG = '#!/usr/bin/env node\n';

// ws, pino and commander are CommonJS. Bundled into an ES module, their require() calls for
// Node's own modules (and for ws's optional bufferutil, which fails and is skipped) need a real
// require. pino's worker transports come along but never start: the agent hands pino a stream,
// and on a terminal pino-pretty runs in the same thread, so nothing beside the bundle is loaded.
const BANNER = [
  "import { createRequire as __portholeCreateRequire } from 'node:module';",
  'const require = __portholeCreateRequire(import.meta.url);',
].join('\n');

/** Writes the one-file agent to `outfile` and returns its size in bytes. */
async function bundleAgent(outfile) {
  await build({
    entryPoints: [ENTRY],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    banner: { js: BANNER },
    // A third of the size, and about 1 MiB less resident memory in an idle agent. Names are kept
    // for whatever reads a class's or function's name.
    minify: true,
    keepNames: true,
    logLevel: 'warning',
  });

  // `./porthole-agent.mjs` runs as a program only with this first line; esbuild keeps the
  // entry's own, if it has one, above the banner.
  const text = await readFile(outfile, 'utf8');

  if (!text.startsWith('#!')) await writeFile(outfile, HASHBANG + text);

  await chmod(outfile, 0o755);

  return (await stat(outfile)).size;
}

const outfile = resolve(process.argv[2] ?? DEFAULT_OUTFILE);
const bytes = await bundleAgent(outfile);
const kib = Math.round(bytes / 1024);

console.log(`one-file agent: ${relative(process.cwd(), outfile)}, ${bytes} bytes (${kib} KiB)`);
