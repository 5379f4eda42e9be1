import type { EventEmitter } from 'node:events';

/** How `until` waits. */
export interface UntilOptions {
  /** How long to wait before failing: 15 s unless told. */
  timeoutMs?: number;
  /** How often to check again: every 25 ms unless told. */
  everyMs?: number;
  /** Checks again at once whenever `emitter` emits `event` too, so a change is seen without delay. */
  wakeOn?: { emitter: EventEmitter; event: string };
}

/**
 * Resolves with the first value of `check` that is neither `false` nor `undefined`. It checks at
 * once, then again every `everyMs` (and on each `wakeOn` event); after `timeoutMs` it fails,
 * naming `what` it waited for (a function is asked only then, to tell the last state seen).
 */
export async function until<T>(
  check: () => T | false | undefined | Promise<T | false | undefined>,
  what: string | (() => string),
  options: UntilOptions = {},
): Promise<T> {
  const { timeoutMs = 15_000, everyMs = 25, wakeOn } = options;
  const deadline = Date.now() + timeoutMs;

  for (;;) {
    const value = await check();

    if (value !== false && value !== undefined) return value;

    const left = deadline - Date.now();

    if (left <= 0) {
      const waitedFor = typeof what === 'string' ? what : what();

      throw new Error(`timed out after ${timeoutMs} ms waiting for ${waitedFor}`);
    }

    await pause(Math.min(everyMs, left), wakeOn);
  }
}

// Waits `ms`, or less if `wakeOn` fires first.
function pause(ms: number, wakeOn: UntilOptions['wakeOn']): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      wakeOn?.emitter.off(wakeOn.event, done);
      resolve();
    };
    const timer = setTimeout(done, ms);

    wakeOn?.emitter.on(wakeOn.event, done);
  });
}
