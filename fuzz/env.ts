/**
 * Reading the fuzz tests' bounds from the environment, so that CI runs a fixed, bounded amount
 * and a person can turn it up (`ORRERY_FUZZ_RUNS=1000`) without editing a test.
 */

/**
 * The integer in environment variable `name`, or `fallback` when it is unset or empty.
 * @throws RangeError when it is set to anything but an integer in `[min, max]`, so that a typo
 * fails loudly instead of silently running the default.
 */
export function envInteger(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}
