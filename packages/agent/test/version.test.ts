import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { AGENT_SOFTWARE } from '../src/tunnel-client.js';

describe('AGENT_SOFTWARE', () => {
  it('names the version in the package manifest', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

    expect(AGENT_SOFTWARE).toBe(`porthole-agent/${(manifest as { version: string }).version}`);
  });
});
