/**
 * Test support for decoders built on the codec: msgpack bytes of arbitrary values, packed with
 * several msgpackr settings (records, extensions, maps), for "garbage never throws anything but
 * CodecError" properties, and an assertion that a call throws a CodecError. It lives outside the
 * pure folders because it uses node:assert. Not exported from the package.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { CodecError } from "./errors.ts";

const PACKRS = [
  new Packr(),
  new Packr({ useRecords: false, structuredClone: true, moreTypes: true }),
  new Packr({ useRecords: false, mapsAsObjects: false, variableMapSize: true }),
];

const ANYTHING = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withTypedArray: true,
  withSparseArray: true,
  withObjectString: true,
});

/** Bytes of an arbitrary JavaScript value packed by msgpackr, or `null` when it cannot pack it. */
export const packedAnythingArb: fc.Arbitrary<Uint8Array | null> = fc
  .tuple(ANYTHING, fc.nat(PACKRS.length - 1))
  .map(([value, which]) => {
    try {
      return new Uint8Array((PACKRS[which] as Packr).pack(value));
    } catch {
      return null; // msgpackr cannot pack every JavaScript value; not a decoder's concern.
    }
  });

/** Asserts that `run` throws a CodecError, and returns it for further checks. */
export function expectCodecError(run: () => unknown): CodecError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof CodecError && CodecError.is(error), `expected a CodecError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a CodecError, but decoding succeeded");
}
