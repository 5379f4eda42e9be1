import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { RELAY_SOFTWARE } from '../src/version.js';

describe('RELAY_SOFTWARE', () => {
  it('names the version in the package manifest', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

    expect(RELAY_SOFTWARE).toBe(`porthole-relay/${(manifest as { version: string }).version}`);
  });
});
