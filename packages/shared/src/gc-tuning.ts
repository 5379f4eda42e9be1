import { setFlagsFromString } from 'node:v8';

/**
 * Sets how V8 collects garbage in a relay or agent process; the command-line entry points call
 * it first thing.
 *
 * A bulk transfer allocates a 64 KiB buffer for every socket read, and V8 sweeps the dead ones
 * after each young-generation collection on a background thread. Until that sweep is done, V8
 * still counts them against its global heap limit, so once the old generation is past V8's
 * threshold for incremental marking (8 MB, which the relay is), every young collection during a
 * transfer can start a full one: dozens of full collections per 100 MiB, which doubled the
 * relay's CPU time per byte. Without incremental marking, a full collection runs only when the
 * old generation really reaches its limit; the heaps here are small, so its pause is short.
 */
export function tuneGarbageCollector(): void {
  setFlagsFromString('--no-incremental-marking');
}
