import { RECENT_REQUESTS } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

import { CarriedRequests } from '../src/carried-requests.js';
import { RelayMetrics } from '../src/metrics.js';
import type { CallbackResult } from '../src/relay-events.js';

describe('RelayMetrics', () => {
  it('writes each family with its HELP and TYPE, and every callback result from zero', () => {
    const text = new RelayMetrics().render({ agentsConnected: 2, streamsOpen: 3 });

    expect(text).toContain('# TYPE porthole_agents_connected gauge\nporthole_agents_connected 2\n');
    expect(text).toContain('porthole_streams_open 3\n');
    expect(text).toContain('porthole_callbacks_total{result="no_container"} 0\n');
    expect(text).toContain('porthole_stream_bytes_total{direction="to_browser"} 0\n');
    expect(text.match(/^# HELP /gm)).toHaveLength(6);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('counts results, bind failures and refused tokens by code', () => {
    const metrics = new RelayMetrics();

    metrics.callback('delivered');
    metrics.callback('delivered');
    metrics.bindFailed();
    metrics.authRefused('PORTHOLE_ERR_TOKEN_EXPIRED');
    metrics.bytes.toContainer += 120;

    const text = metrics.render({ agentsConnected: 0, streamsOpen: 0 });

    expect(text).toContain('porthole_callbacks_total{result="delivered"} 2\n');
    expect(text).toContain('porthole_mirror_bind_failures_total 1\n');
    expect(text).toContain('porthole_auth_failures_total{code="PORTHOLE_ERR_TOKEN_EXPIRED"} 1\n');
    expect(text).toContain('porthole_stream_bytes_total{direction="to_container"} 120\n');
  });

  it('escapes a label value as the exposition format asks', () => {
    const metrics = new RelayMetrics();

    metrics.authRefused('a"b\\c\nd');

    expect(metrics.render({ agentsConnected: 0, streamsOpen: 0 })).toContain(
      'porthole_auth_failures_total{code="a\\"b\\\\c\\nd"} 1\n',
    );
  });
});

describe('CarriedRequests', () => {
  function list() {
    const settled: CallbackResult[] = [];
    const requests = new CarriedRequests({
      settled: (result) => settled.push(result),
      changed: () => undefined,
    });

    return { requests, settled };
  }

  it(`keeps the latest ${RECENT_REQUESTS} requests, newest first`, () => {
    const { requests } = list();

    for (let i = 0; i < RECENT_REQUESTS + 5; i++) {
      requests.start({ port: 1000 + i, method: 'GET', path: '/' });
    }

    const shown = requests.list();

    expect(shown).toHaveLength(RECENT_REQUESTS);
    expect(shown[0]?.port).toBe(1000 + RECENT_REQUESTS + 4);
    expect(shown.at(-1)?.port).toBe(1005);
  });

  it('settles a request once, and calls one that ended unanswered "no_answer"', () => {
    const { requests, settled } = list();
    const answered = requests.start({ port: 1, method: 'GET', path: '/a' });
    const dropped = requests.start({ port: 2, method: 'GET', path: '/b' });

    answered.route('dev', 8000);
    answered.settle('delivered', 200);
    answered.settle('failed', null);
    answered.end();
    dropped.end();

    const [b, a] = requests.list();

    expect(settled).toEqual(['delivered', 'no_answer']);
    expect(a).toMatchObject({
      agent: 'dev',
      containerPort: 8000,
      status: 200,
      result: 'delivered',
    });
    expect(a?.ms).toBeGreaterThanOrEqual(0);
    expect(b).toMatchObject({ agent: null, status: null, result: 'no_answer' });
  });

  it('cuts a long path', () => {
    const { requests } = list();

    requests.start({ port: 1, method: 'GET', path: `/${'x'.repeat(5000)}` });

    expect(requests.list()[0]?.path?.length).toBeLessThanOrEqual(201);
  });
});
