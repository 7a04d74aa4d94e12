import assert from "node:assert/strict";
import { it } from "node:test";
import { crc32c } from "./crc32c.ts";

it("matches the CRC-32C check value and known vectors", () => {
  // The standard check value: CRC-32C("123456789") = 0xE3069283 (RFC 3720, appendix B.4).
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // 32 zero bytes, RFC 3720 B.4
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
});
