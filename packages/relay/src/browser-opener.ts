import type { Logger } from './logger.js';
import { messages } from './messages.js';

/**
 * Shows the user the pages that containers ask to open, and opens them in the browser of the
 * relay's machine. The URL is a prompt, not a log line: an authorization URL carries its
 * `state` by necessity, and is written to the terminal only.
 */
export class BrowserOpener {
  readonly #enabled: boolean;
  readonly #log: Logger;
  readonly #prompt: (text: string) => void;

  constructor(
    enabled: boolean,
    log: Logger,
    prompt: (text: string) => void = (t) => process.stderr.write(t),
  ) {
    this.#enabled = enabled;
    this.#log = log;
    this.#prompt = prompt;
  }

  async open(agent: string, url: string): Promise<void> {
    let parsed: URL;

    try {
      parsed = new URL(url);
    } catch {
      this.#log.warn({ agent }, messages.openRefused(agent));
      return;
    }

    // Only web pages: a file:, javascript: or custom-scheme URL could start a program here.
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      this.#log.warn({ agent }, messages.openRefused(agent));
      return;
    }

    this.#log.info({ agent, site: parsed.host }, messages.openRequested(agent, parsed.host));
    this.#prompt(`\nOpen this page to continue: ${parsed.href}\n\n`);

    if (!this.#enabled) return;

    try {
      const { default: open } = await import('open');
      const child = await open(parsed.href);

      child.on('error', () => this.#log.warn(messages.openFailed()));
    } catch {
      this.#log.warn(messages.openFailed());
    }
  }
}
