/**
 * readBodyWithin against a real node:http server: a body within the limit is returned whole, one
 * declared too large is answered before a byte is read, one that passes the limit while streaming
 * is cut off there.
 */
import assert from "node:assert/strict";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { readBodyWithin } from "./http-body.ts";

const BYTES_MAX = 16;

describe("readBodyWithin", { timeout: 60_000 }, () => {
  let server: Server;
  let port = 0;
  const seen: { body: string | null; tooLarge: boolean }[] = [];

  before(async () => {
    server = createServer(async (req, res) => {
      let tooLarge = false;
      const body = await readBodyWithin(req, BYTES_MAX, () => {
        tooLarge = true;
        res.writeHead(413, { connection: "close" }).end("too large");
      });
      seen.push({ body: body === null ? null : body.toString("utf8"), tooLarge });
      if (body !== null) res.writeHead(200).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  /** Sends `chunks` (with a content-length when `declared` is given); resolves with the status, or `reset`. */
  function send(chunks: string[], declared?: number): Promise<number | "reset"> {
    return new Promise((resolve) => {
      const req = request(
        { host: "127.0.0.1", port, method: "PUT", path: "/", headers: declared === undefined ? {} : { "content-length": declared } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", () => resolve("reset"));
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  }

  it("returns a body within the limit, whole", async () => {
    assert.equal(await send(["0123456789", "abcdef"]), 200);
    assert.deepEqual(seen.at(-1), { body: "0123456789abcdef", tooLarge: false });
  });

  it("answers a body declared over the limit without reading it", async () => {
    const status = await send(["x".repeat(BYTES_MAX + 1)], BYTES_MAX + 1);
    assert.equal(status, 413);
    assert.deepEqual(seen.at(-1), { body: null, tooLarge: true });
  });

  it("stops reading a streamed body once it passes the limit", async () => {
    const status = await send(["x".repeat(BYTES_MAX), "y"]);
    // The connection ends at the limit: the client sees the 413 or, if it was still writing, a reset.
    assert.ok(status === 413 || status === "reset", `got ${status}`);
    assert.deepEqual(seen.at(-1), { body: null, tooLarge: true });
  });
});
