import { LOOPBACK_HOST_NAMES } from '@porthole/shared';
import { type Browser, chromium, type Page, type Request } from 'playwright-core';

/** Debian's Chromium, driven over the DevTools protocol by playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Starts a headless Chromium; each test takes a fresh context (`browser.newContext()`).
 * `extraArgs` go on its command line, such as `--host-resolver-rules=MAP name 127.0.0.1`.
 */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/**
 * Opens the first page of a login, as page.goto does, but tries again when Chromium aborted
 * it with ERR_NETWORK_CHANGED before anything was sent to a loopback address. Chromium
 * aborts what is in flight whenever an address on the machine changes: the browser files run
 * alone, after the others, but a test's own namespace comes up just before its login, and the
 * browser may hear of it only once the first page is on its way. Only the provider's page is
 * ever asked again: once the browser has set out for a callback, a failure stands, since a
 * second callback is not what a user's browser would send.
 */
export async function gotoLoginPage(page: Page, url: string, timeoutMs: number): Promise<void> {
  let towardLoopback = false;
  const onRequest = (request: Request) => {
    if (LOOPBACK_HOST_NAMES.has(new URL(request.url()).hostname)) towardLoopback = true;
  };

  page.on('request', onRequest);

  try {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await page.goto(url, { waitUntil: 'commit', timeout: timeoutMs });
        return;
      } catch (err) {
        const changed = (err as Error).message.includes('ERR_NETWORK_CHANGED');

        if (!changed || towardLoopback || attempt === 3) throw err;
      }
    }
  } finally {
    page.off('request', onRequest);
  }
}

/**
 * Sends `page` to `url`, lets it follow whatever redirects, scripts and form posts come, and
 * resolves once the page shows `text`. On the deadline it fails with where the page ended up
 * and what it showed.
 */
export async function openUntilText(
  page: Page,
  url: string,
  text: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const requests = watchFailedRequests(page);

  try {
    await gotoLoginPage(page, url, timeoutMs);
    await page
      .getByText(text)
      .first()
      .waitFor({ state: 'visible', timeout: Math.max(1, deadline - Date.now()) });
  } catch (err) {
    throw new Error(
      `the browser did not show "${text}" after opening ${url}: it is at ` +
        `${await pageReport(page, requests.failed)}: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    requests.stop();
  }
}

/**
 * Notes each request `page` sees fail, as `METHOD URL: error`, until `stop`. page.goto reports
 * only the first URL of a redirect chain; these say which hop broke.
 */
export function watchFailedRequests(page: Page): { failed: string[]; stop: () => void } {
  const failed: string[] = [];
  const onFailed = (request: Request) =>
    failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`);

  page.on('requestfailed', onFailed);

  return { failed, stop: () => page.off('requestfailed', onFailed) };
}

/** Where `page` is and what it shows, and the requests that failed, for a failure message. */
export async function pageReport(page: Page, failed: readonly string[]): Promise<string> {
  const shown = await page
    .locator('body')
    .innerText({ timeout: 1_000 })
    .catch(() => '(nothing)');

  return (
    `${page.url()} showing ${JSON.stringify(shown.slice(0, 500))}; failed requests: ` +
    `${failed.join('; ') || 'none'}`
  );
}
