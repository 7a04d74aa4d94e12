import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TransportError } from "../lib/errors.ts";
import { backoffMs, formatAddress, parseAddress } from "./network.ts";

describe("network helpers", () => {
  it("draws each backoff from [base/2, base], base doubling up to the cap", () => {
    for (const [attempt, base] of [[1, 10], [2, 20], [3, 40], [4, 80], [5, 100], [60, 100]] as const) {
      assert.equal(backoffMs(attempt, 10, 100, () => 0), base / 2);
      assert.equal(backoffMs(attempt, 10, 100, () => 0.999999), base);
    }
  });

  it("parses and formats host:port, IPv6 in brackets", () => {
    assert.deepEqual(parseAddress("127.0.0.1:7000"), { host: "127.0.0.1", port: 7000 });
    assert.deepEqual(parseAddress("[::1]:0"), { host: "::1", port: 0 });
    assert.equal(formatAddress("::1", 80), "[::1]:80");
    assert.equal(formatAddress("example.org", 80), "example.org:80");
    for (const bad of ["", "host", ":80", "host:", "host:99999", "host:8x"]) {
      assert.throws(() => parseAddress(bad), (e) => TransportError.is(e) && e.reason === "config", bad);
    }
  });
});
