import { describe, expect, it } from 'vitest';

import { proofUrl } from '../src/relay-proof.js';

describe('proofUrl', () => {
  it.each([
    [
      'ws://host.docker.internal:8888/agent',
      'http://host.docker.internal:8888/agent/proof?nonce=n1',
    ],
    ['wss://relay.example/agent', 'https://relay.example/agent/proof?nonce=n1'],
    // Behind a proxy that puts the relay under a path of its own.
    ['wss://proxy.example/porthole/agent/', 'https://proxy.example/porthole/agent/proof?nonce=n1'],
  ])('asks %s for its proof at %s', (endpoint, expected) => {
    expect(proofUrl(endpoint, 'n1').toString()).toBe(expected);
  });
});
