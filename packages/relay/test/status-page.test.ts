import { describe, expect, it } from 'vitest';

import type { StatusSnapshot } from '../src/status-snapshot.js';
import { statusPage } from '../src/status-page.js';
import { isLoopbackPeer, isRelayHost } from '../src/status-routes.js';
import { renderStatus, STATUS_VIEW_SOURCE } from '../src/status-view.js';

const snapshot: StatusSnapshot = {
  now: '2026-01-02T03:04:05.000Z',
  version: 'porthole-relay/test',
  agents: [
    {
      name: '<img src=x onerror=alert(1)>',
      status: 'connected',
      since: '2026-01-02T03:02:05.000Z',
      address: '10.0.0.2',
      ports: [
        {
          hostPort: 43817,
          containerPort: 43817,
          addresses: ['127.0.0.1:43817', '[::1]:43817'],
          status: 'mirrored',
          why: ['listening', 'login'],
          detail: null,
        },
      ],
    },
  ],
  logins: [
    {
      id: 'abc',
      agent: 'dev',
      site: 'login.example.com',
      port: 43817,
      path: '/callback',
      since: '2026-01-02T03:03:55.000Z',
    },
  ],
  requests: [
    {
      at: '2026-01-02T03:04:00.000Z',
      agent: 'dev',
      port: 43817,
      containerPort: 43817,
      method: 'GET',
      path: '/callback?code&state',
      status: 302,
      result: 'delivered',
      ms: 12,
    },
  ],
};

describe('the status page markup', () => {
  it('escapes every value it shows', () => {
    const html = renderStatus(snapshot);

    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;');
  });

  it('shows agents, ports, logins with their button, and requests', () => {
    const html = renderStatus(snapshot);

    expect(html).toMatch(/data-port="43817">.*mirrored.*listening, login/);
    expect(html).toContain('2 min ago');
    expect(html).toMatch(/login\.example\.com.*\/callback.*10 s ago/);
    expect(html).toContain('action="/api/logins/abc/open"');
    expect(html).toContain('GET /callback?code&#38;state');
    expect(html).toContain('<span class="badge ok">302</span>');
  });

  it("draws the same markup in the browser's script as on the server", () => {
    const draw = new Function(`${STATUS_VIEW_SOURCE}\nreturn renderStatus;`)() as (
      s: StatusSnapshot,
    ) => string;

    expect(draw(snapshot)).toBe(renderStatus(snapshot));
  });

  it('is a whole page with its script and no outside asset', () => {
    const html = statusPage(snapshot);

    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("new EventSource('/events')");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });
});

describe('who may use the status page', () => {
  it('answers to loopback names and the listen addresses, with or without a port', () => {
    const hosts = ['127.0.0.1', '172.17.0.1', 'fd00::1'];

    for (const host of [
      'localhost:8888',
      '127.0.0.1',
      '[::1]:8888',
      '172.17.0.1:8888',
      '[fd00::1]',
    ]) {
      expect(isRelayHost(host, hosts), host).toBe(true);
    }
    for (const host of ['evil.example:8888', '172.17.0.2:8888', 'localhost.evil.example', '']) {
      expect(isRelayHost(host, hosts), host).toBe(false);
    }
  });

  it('takes only loopback peers for the button', () => {
    expect(isLoopbackPeer('127.0.0.1')).toBe(true);
    expect(isLoopbackPeer('::1')).toBe(true);
    expect(isLoopbackPeer('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackPeer('10.213.4.2')).toBe(false);
    expect(isLoopbackPeer(undefined)).toBe(false);
  });
});
