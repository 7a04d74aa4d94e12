/**
 * Waiting on real processes, for the examples' process harnesses: a bound on a promise, and a poll
 * interval. Never a way to wait for something to happen by time alone.
 */

/** Resolves after `ms`: a poll interval or a documented gap, never a way to wait for something to happen. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection naming `what` once `ms` passed first; the timer is cleared either way. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
