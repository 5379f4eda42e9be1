import {
  type ControlMessage,
  encodeControlMessage,
  ErrorCodes,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_MAPPINGS_PER_AGENT,
  parseControlMessage,
  ProtocolError,
} from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { thrownBy } from './thrown-by.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const VALID: { name: string; message: ControlMessage }[] = [
  {
    name: 'hello',
    message: { type: 'hello', version: 1, nonce: 'bm9uY2U', software: 'porthole-agent/0.1.0' },
  },
  {
    name: 'welcome',
    message: { type: 'welcome', version: 1, proof: 'c2lnbmF0dXJl', software: 'porthole/0.1.0' },
  },
  {
    name: 'map',
    message: {
      type: 'map',
      mappings: [
        { hostPort: 8080, containerPort: 3000 },
        { hostPort: 1, containerPort: 65535 },
      ],
    },
  },
  { name: 'map with no mappings', message: { type: 'map', mappings: [] } },
  {
    name: 'mapped',
    message: {
      type: 'mapped',
      hostPort: 8080,
      containerPort: 3000,
      status: 'mirrored',
      addresses: ['127.0.0.1', '::1'],
      source: 'map',
    },
  },
  {
    name: 'mapped with a detail',
    message: {
      type: 'mapped',
      hostPort: 8080,
      containerPort: 3000,
      status: 'busy',
      addresses: [],
      source: 'listening',
      detail: 'address already in use',
    },
  },
  { name: 'ports', message: { type: 'ports', ports: [1455, 43817] } },
  { name: 'ports with none listening', message: { type: 'ports', ports: [] } },
  {
    name: 'register',
    message: { type: 'register', port: 1455, path: '/auth/callback', state: 'xyz' },
  },
  { name: 'register without a state', message: { type: 'register', port: 80, path: '/' } },
  { name: 'open', message: { type: 'open', url: 'https://accounts.example/authorize?x=1' } },
  {
    name: 'error',
    message: { type: 'error', code: ErrorCodes.HANDSHAKE, message: 'handshake timed out' },
  },
];

const HELLO = { type: 'hello', version: 1, nonce: 'n', software: 's' };
const WELCOME = { type: 'welcome', version: 1, proof: 'p', software: 's' };
const MAPPED = {
  type: 'mapped',
  hostPort: 80,
  containerPort: 80,
  status: 'failed',
  addresses: ['127.0.0.1'],
  source: 'login',
};
const ERROR = { type: 'error', code: 'X', message: 'm' };

function mappings(count: number): { [key: string]: Json }[] {
  return Array.from({ length: count }, (_, i) => ({ hostPort: 1000 + i, containerPort: 2000 + i }));
}

function omit(value: { [key: string]: Json }, name: string): Json {
  const rest = { ...value };

  delete rest[name];

  return rest;
}

// What parsing `text` threw, as `text: error`, when it was anything but a ProtocolError.
function unexpectedThrow(text: string): string[] {
  try {
    parseControlMessage(text);
  } catch (err) {
    if (!(err instanceof ProtocolError)) return [`${text}: ${String(err)}`];
  }

  return [];
}

function expectInvalid(text: string): void {
  const err = thrownBy(() => parseControlMessage(text));

  expect(err).toBeInstanceOf(ProtocolError);
  expect(err).toMatchObject({ code: ErrorCodes.CONTROL_INVALID });
}

function expectInvalidJson(value: Json): void {
  expectInvalid(JSON.stringify(value));
}

/** mulberry32: a small deterministic PRNG so that the random inputs are the same on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;

  return () => {
    state = (state + 0x6d2b79f5) >>> 0;

    let t = state;

    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);

    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseControlMessage', () => {
  it.each(VALID)('accepts a $name message', ({ message }) => {
    expect(parseControlMessage(JSON.stringify(message))).toEqual(message);
  });

  it.each(VALID)('round-trips a $name message through encodeControlMessage', ({ message }) => {
    const text = encodeControlMessage(message);

    expect(parseControlMessage(text)).toEqual(message);
    expect(encodeControlMessage(parseControlMessage(text))).toBe(text);
  });

  it('drops fields a message type does not define', () => {
    const parsed = parseControlMessage(JSON.stringify({ ...HELLO, extra: 'x', token: 'secret' }));

    expect(parsed).toEqual(HELLO);
  });

  it.each(['mirrored', 'busy', 'failed'])('accepts the mirror status %s', (status) => {
    expect(parseControlMessage(JSON.stringify({ ...MAPPED, status }))).toMatchObject({ status });
  });

  it('accepts exactly MAX_MAPPINGS_PER_AGENT mappings', () => {
    const message = { type: 'map', mappings: mappings(MAX_MAPPINGS_PER_AGENT) };

    expect(parseControlMessage(JSON.stringify(message))).toEqual(message);
  });

  it('accepts a message of exactly MAX_CONTROL_MESSAGE_BYTES', () => {
    const text = JSON.stringify(HELLO);
    const padded = text + ' '.repeat(MAX_CONTROL_MESSAGE_BYTES - text.length);

    expect(padded.length).toBe(MAX_CONTROL_MESSAGE_BYTES);
    expect(parseControlMessage(padded)).toEqual(HELLO);
  });

  it.each([
    '',
    '{',
    '{"type":"hello"',
    "{'type':'hello'}",
    'undefined',
    '{"type":"hello",}',
    'NaN',
  ])('rejects text that is not JSON: %j', (text) => {
    expectInvalid(text);
  });

  it.each(['null', 'true', '42', '"hello"'])('rejects the non-object %s', (text) => {
    expectInvalid(text);
  });

  it.each(['[]', JSON.stringify([HELLO])])('rejects the array %s', (text) => {
    expectInvalid(text);
  });

  it.each<Json>([
    {},
    { version: 1, nonce: 'n', software: 's' },
    { ...HELLO, type: 'nope' },
    { ...HELLO, type: 'Hello' },
    { ...HELLO, type: 1 },
    { ...HELLO, type: null },
    { ...HELLO, type: ['hello'] },
    { ...HELLO, type: '__proto__' },
    { ...HELLO, type: 'constructor' },
    { ...HELLO, type: 'toString' },
    { ...HELLO, type: 'hasOwnProperty' },
  ])('rejects an unknown type: %j', (value) => {
    expectInvalidJson(value);
  });

  it.each<[string, Json]>([
    ['hello without version', { type: 'hello', nonce: 'n', software: 's' }],
    ['hello without nonce', { type: 'hello', version: 1, software: 's' }],
    ['hello without software', { type: 'hello', version: 1, nonce: 'n' }],
    ['hello with a string version', { ...HELLO, version: '1' }],
    ['hello with a fractional version', { ...HELLO, version: 1.5 }],
    ['hello with a negative version', { ...HELLO, version: -1 }],
    ['hello with a version above 65535', { ...HELLO, version: 65536 }],
    ['hello with a numeric nonce', { ...HELLO, nonce: 5 }],
    ['hello with a null nonce', { ...HELLO, nonce: null }],
    ['hello with a 129-character nonce', { ...HELLO, nonce: 'n'.repeat(129) }],
    ['hello with a 65-character software', { ...HELLO, software: 's'.repeat(65) }],
    ['welcome without proof', { type: 'welcome', version: 1, software: 's' }],
    ['welcome with an object proof', { ...WELCOME, proof: { sig: 'p' } }],
    ['welcome with a 257-character proof', { ...WELCOME, proof: 'p'.repeat(257) }],
    ['map without mappings', { type: 'map' }],
    ['map with an object for mappings', { type: 'map', mappings: { hostPort: 1 } }],
    ['map with a null mapping', { type: 'map', mappings: [null] }],
    ['map with a number mapping', { type: 'map', mappings: [80] }],
    ['map with an array mapping', { type: 'map', mappings: [[80, 80]] }],
    ['map with a mapping without containerPort', { type: 'map', mappings: [{ hostPort: 80 }] }],
    ['map with a string port', { type: 'map', mappings: [{ hostPort: '80', containerPort: 80 }] }],
    [
      'map with a fractional port',
      { type: 'map', mappings: [{ hostPort: 80.5, containerPort: 80 }] },
    ],
    ['mapped without status', omit(MAPPED, 'status')],
    ['mapped without a source', omit(MAPPED, 'source')],
    ['mapped with an unknown source', { ...MAPPED, source: 'guess' }],
    ['ports with a port 0', { type: 'ports', ports: [0] }],
    ['ports with a string', { type: 'ports', ports: ['80'] }],
    ['ports with 1025 entries', { type: 'ports', ports: new Array<number>(1025).fill(80) }],
    ['register without a path', { type: 'register', port: 80 }],
    [
      'register with a 513-character state',
      { type: 'register', port: 80, path: '/', state: 's'.repeat(513) },
    ],
    ['open without a url', { type: 'open' }],
    ['open with a numeric url', { type: 'open', url: 1 }],
    ['mapped with an unknown status', { ...MAPPED, status: 'mirrored!' }],
    ['mapped with a numeric status', { ...MAPPED, status: 1 }],
    ['mapped without addresses', omit(MAPPED, 'addresses')],
    ['mapped with a string for addresses', { ...MAPPED, addresses: '127.0.0.1' }],
    ['mapped with a numeric address', { ...MAPPED, addresses: [127001] }],
    ['mapped with a 65-character address', { ...MAPPED, addresses: ['a'.repeat(65)] }],
    ['mapped with 17 addresses', { ...MAPPED, addresses: new Array<string>(17).fill('::1') }],
    ['mapped with a null detail', { ...MAPPED, detail: null }],
    ['mapped with a numeric detail', { ...MAPPED, detail: 7 }],
    ['mapped with a 513-character detail', { ...MAPPED, detail: 'd'.repeat(513) }],
    ['error without code', { type: 'error', message: 'm' }],
    ['error without message', { type: 'error', code: 'X' }],
    ['error with a 65-character code', { ...ERROR, code: 'C'.repeat(65) }],
    ['error with a 1025-character message', { ...ERROR, message: 'm'.repeat(1025) }],
  ])('rejects a %s', (_name, value) => {
    expectInvalidJson(value);
  });

  it.each([0, 65536, -1, 1e9])('rejects port %d in a map message', (port) => {
    expectInvalidJson({ type: 'map', mappings: [{ hostPort: port, containerPort: 80 }] });
    expectInvalidJson({ type: 'map', mappings: [{ hostPort: 80, containerPort: port }] });
  });

  it.each([0, 65536])('rejects port %d in a mapped message', (port) => {
    expectInvalidJson({ ...MAPPED, hostPort: port });
    expectInvalidJson({ ...MAPPED, containerPort: port });
  });

  it.each([1, 65535])('accepts the edge port %d', (port) => {
    const message = { type: 'map', mappings: [{ hostPort: port, containerPort: port }] };

    expect(parseControlMessage(JSON.stringify(message))).toEqual(message);
  });

  it('rejects MAX_MAPPINGS_PER_AGENT + 1 mappings', () => {
    expectInvalidJson({ type: 'map', mappings: mappings(MAX_MAPPINGS_PER_AGENT + 1) });
  });

  it('rejects a message longer than MAX_CONTROL_MESSAGE_BYTES', () => {
    const text = JSON.stringify(HELLO);

    expectInvalid(text + ' '.repeat(MAX_CONTROL_MESSAGE_BYTES - text.length + 1));
  });

  it('rejects an oversized message before parsing it', () => {
    expectInvalid(`[${'['.repeat(MAX_CONTROL_MESSAGE_BYTES)}`);
  });

  it('throws nothing but ProtocolError for random strings', () => {
    const random = prng(0x5eed);
    const alphabet = '{}[]":,.-+0123456789eE truefalsnhloyp\\/u\u00e9\u2028\ud83d\ude00';
    const failures: string[] = [];

    for (let i = 0; i < 400; i += 1) {
      const length = Math.floor(random() * 64);
      let text = '';

      for (let j = 0; j < length; j += 1) {
        text += alphabet[Math.floor(random() * alphabet.length)];
      }

      try {
        parseControlMessage(text);
      } catch (err) {
        if (!(err instanceof ProtocolError)) {
          failures.push(`${JSON.stringify(text)}: ${String(err)}`);
        }
      }
    }

    expect(failures).toEqual([]);
  });

  it('throws nothing but ProtocolError for random JSON values', () => {
    const random = prng(20240601);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const keys = [
      'type',
      'version',
      'nonce',
      'proof',
      'software',
      'mappings',
      'hostPort',
      'containerPort',
      'status',
      'addresses',
      'detail',
      'code',
      'message',
      '__proto__',
      'constructor',
    ];
    const strings = ['hello', 'welcome', 'map', 'mapped', 'error', 'mirrored', 'busy', '', 'x'];
    const numbers = [0, 1, -1, 1.5, 80, 65535, 65536, 2 ** 53, -0, 1e308];

    const value = (depth: number): Json => {
      const roll = random();

      if (depth > 3 || roll < 0.15) return pick(numbers);
      if (roll < 0.3) return pick(strings);
      if (roll < 0.35) return null;
      if (roll < 0.4) return random() < 0.5;
      if (roll < 0.55) {
        return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      }

      // No prototype, so that a "__proto__" key becomes an ordinary own field.
      const object = Object.create(null) as { [key: string]: Json };
      const count = Math.floor(random() * 6);

      if (depth === 0 && random() < 0.8) object['type'] = pick(strings);

      for (let i = 0; i < count; i += 1) {
        object[pick(keys)] = value(depth + 1);
      }

      return object;
    };

    const failures: string[] = [];

    for (let i = 0; i < 400; i += 1) {
      const text = JSON.stringify(value(0));

      failures.push(...unexpectedThrow(text));
    }

    expect(failures).toEqual([]);
  });

  it('throws nothing but ProtocolError for valid messages with one field replaced at random', () => {
    const random = prng(7);
    const replacements: Json[] = [
      null,
      true,
      -1,
      0,
      1.25,
      70000,
      '',
      'x'.repeat(2000),
      [],
      {},
      [{}],
    ];
    const failures: string[] = [];

    for (let i = 0; i < 300; i += 1) {
      const base = VALID[Math.floor(random() * VALID.length)]?.message as ControlMessage;
      const fields = JSON.parse(JSON.stringify(base)) as { [key: string]: Json };
      const names = Object.keys(fields);
      const name = names[Math.floor(random() * names.length)] as string;

      if (random() < 0.2) {
        delete fields[name];
      } else {
        fields[name] = replacements[Math.floor(random() * replacements.length)] as Json;
      }

      const text = JSON.stringify(fields);

      failures.push(...unexpectedThrow(text));
    }

    expect(failures).toEqual([]);
  });
});
