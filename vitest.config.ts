import { configDefaults, defineConfig } from 'vitest/config';

// Chromium aborts whatever it has in flight (ERR_NETWORK_CHANGED) whenever an address on the
// machine changes, and the other end-to-end files add and remove network namespaces, with
// addresses on the host, all the time. The files that drive Chromium (*.browser.test.ts) run
// after all the others, one at a time, so that only their own set-up changes the network.
const BROWSER_FILES = 'test/**/*.browser.test.ts';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // End-to-end files start real processes and bind ports; two cores run two at a time well.
    maxWorkers: 2,
    reporters: ['default', './test/plain-summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'processes',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, BROWSER_FILES],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: [BROWSER_FILES],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
