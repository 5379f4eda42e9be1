/** What `fn` throws; the test fails when it returns instead. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }

  throw new Error('expected a throw');
}

/** What `fn` throws, or `undefined` when it returns. */
export function caughtFrom(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }

  return undefined;
}
