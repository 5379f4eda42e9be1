import type { Browser, BrowserContext, BrowserContextOptions } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

import { AuthServer } from './auth-server.js';
import { launchChromium } from './browser.js';
import type { Program } from './processes.js';

/** What the tests of a file (or a describe block) share for browser logins. */
export interface BrowserLogins {
  readonly auth: AuthServer;
  /** This test's browser context, fresh for each test. */
  readonly context: BrowserContext;
  /** Run, last first, once this test has ended. */
  readonly cleanups: (() => unknown)[];
  /** Stops `program` once this test has ended, and prints its output if the test fails. */
  track(label: string, program: Program): Program;
}

/**
 * Registers the hooks for tests that log in through a real browser, in the file or describe
 * block it is called in: one Chromium and one stand-in authorization server for all of them, a
 * fresh browser context for each test, and on a failure the last `lastLines` lines of each
 * program the test tracked.
 */
export function setUpBrowserLogins(
  options: { context?: BrowserContextOptions; lastLines?: number } = {},
): BrowserLogins {
  const { lastLines = 80 } = options;
  let browser: Browser | undefined;
  let auth: AuthServer | undefined;
  let context: BrowserContext | undefined;
  const cleanups: (() => unknown)[] = [];
  let programs: { label: string; program: Program }[] = [];

  beforeAll(async () => {
    browser = await launchChromium();
    auth = await AuthServer.start();
  });

  afterAll(async () => {
    await browser?.close();
    await auth?.close();
  });

  beforeEach(async ({ onTestFailed }) => {
    const current: typeof programs = [];

    programs = current;
    context = await started(browser).newContext(options.context);
    // Runs after afterEach has stopped everything, so it reads this test's list, not `programs`.
    onTestFailed(() => {
      for (const { label, program } of current) {
        console.log(
          `--- ${label} (last ${lastLines} lines)\n${program.lines.slice(-lastLines).join('\n')}`,
        );
      }
    });
  });

  afterEach(async () => {
    await context?.close();
    context = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  return {
    get auth() {
      return started(auth);
    },
    get context() {
      return started(context);
    },
    cleanups,
    track(label, program) {
      programs.push({ label, program });
      cleanups.push(() => program.stop());
      return program;
    },
  };
}

function started<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('used outside a test: the browser is not started yet');

  return value;
}
