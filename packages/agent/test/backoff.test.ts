import { agentEndpoint, reconnectDelay } from '@porthole/agent';
import { ErrorCodes, PortholeError } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

const MIN = 500;
const MAX = 30_000;
const always = (value: number) => () => value;

describe('reconnectDelay', () => {
  it('stays within 0.5 s and 30 s for any attempt and any random draw', () => {
    const draws = [0, 1e-9, 0.25, 0.5, 0.75, 0.999_999, 1];

    for (let attempt = 0; attempt <= 64; attempt += 1) {
      for (const draw of draws) {
        const delay = reconnectDelay(attempt, always(draw));

        expect(delay).toBeGreaterThanOrEqual(MIN);
        expect(delay).toBeLessThanOrEqual(MAX);
      }
    }
  });

  it('stays within 0.5 s and 30 s with the real Math.random', () => {
    for (let i = 0; i < 2000; i += 1) {
      const delay = reconnectDelay(i % 20);

      expect(delay).toBeGreaterThanOrEqual(MIN);
      expect(delay).toBeLessThanOrEqual(MAX);
    }
  });

  it('is 0.5 s for the first attempt whatever the draw', () => {
    expect([0, 0.5, 1].map((draw) => reconnectDelay(0, always(draw)))).toEqual([MIN, MIN, MIN]);
  });

  it('doubles its ceiling with each attempt', () => {
    const ceilings = [0, 1, 2, 3, 4, 5].map((attempt) => reconnectDelay(attempt, always(1)));

    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16_000]);
  });

  it('draws with full jitter between the minimum and the ceiling', () => {
    expect(reconnectDelay(3, always(0))).toBe(MIN);
    expect(reconnectDelay(3, always(0.5))).toBe(MIN + (4000 - MIN) / 2);
  });

  it('reaches exactly 30 s at attempt 6 and stays there', () => {
    expect(reconnectDelay(6, always(1))).toBe(MAX);

    for (const attempt of [7, 8, 10, 30, 31, 100, 1e6]) {
      expect(reconnectDelay(attempt, always(1))).toBe(MAX);
    }
  });
});

describe('agentEndpoint', () => {
  it.each([
    ['http://relay.example:8888', 'ws://relay.example:8888/agent'],
    ['https://relay.example', 'wss://relay.example/agent'],
  ])('turns %s into %s', (given, endpoint) => {
    expect(agentEndpoint(given)).toBe(endpoint);
  });

  it.each([
    ['ws://host.docker.internal:8888', 'ws://host.docker.internal:8888/agent'],
    ['ws://127.0.0.1:8888/', 'ws://127.0.0.1:8888/agent'],
    ['wss://relay.example', 'wss://relay.example/agent'],
  ])('adds /agent to the bare address %s', (given, endpoint) => {
    expect(agentEndpoint(given)).toBe(endpoint);
  });

  it.each([
    ['wss://relay.example/porthole/agent', 'wss://relay.example/porthole/agent'],
    ['https://relay.example/team/a', 'wss://relay.example/team/a'],
  ])('keeps the path of %s', (given, endpoint) => {
    expect(agentEndpoint(given)).toBe(endpoint);
  });

  it.each(['ftp://relay.example', 'file:///tmp/relay', 'not a url', '', 'relay.example:8888'])(
    'refuses %j with an invalid-option error',
    (given) => {
      let error: unknown;

      try {
        agentEndpoint(given);
      } catch (err) {
        error = err;
      }

      expect(error).toBeInstanceOf(PortholeError);
      expect((error as PortholeError).code).toBe(ErrorCodes.INVALID_OPTION);
      expect((error as PortholeError).code).toBe('PORTHOLE_ERR_INVALID_OPTION');
    },
  );
});
