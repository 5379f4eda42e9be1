import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Namespace } from '../helpers/netns.js';

const WATCH_PORTS = fileURLToPath(new URL('../fixtures/watch-ports.mjs', import.meta.url));

describe('the port watcher in a network namespace with nothing else in it', () => {
  let ns: Namespace;

  beforeAll(() => {
    ns = Namespace.create();
  });

  afterAll(() => ns?.destroy());

  it('leaves the socket tables unread while no socket opens or closes, and sees a listener come and go', async () => {
    // The fixture's watcher reads the tables on its own schedule only once an hour: what it sees
    // after its first scan, it sees because the namespace's socket counters moved.
    const watcher = ns.spawn(process.execPath, [WATCH_PORTS]);

    expect(await watcher.exited, watcher.output).toBe(0);

    const [idle, opened, closed] = watcher.stdout;

    expect(idle).toBe('idle scans=1');
    expect(opened).toMatch(/^opened port=\d+ ms=\d+ scans=[23]$/);
    expect(closed).toMatch(/^closed ms=\d+ scans=[3-5]$/);
  });
});
