import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { InvalidRequestError, StaleEpochError } from "../../lib/errors.ts";
import { keyOfUrl, ROUTING_HEADERS, type ServeContext, type WorkerRequest, type WorkerResponse } from "../../lib/host/routing.ts";
import { FencedDatabases, ITEMS_LIST_MAX, VALUE_BYTES_MAX } from "./databases.ts";

const KEY = "/db/users";

let dir: string;
let opened: FencedDatabases[];

/** A FencedDatabases on the test's directory, closed after the test: one "worker". */
function worker(): FencedDatabases {
  const databases = new FencedDatabases({ dir });
  opened.push(databases);
  return databases;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "orrery-databases-"));
  opened = [];
});

afterEach(() => {
  // The folder goes even when a database fails to close.
  try {
    for (const databases of opened) databases.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A ServeContext stub that counts its `stillOwned()` calls. */
function context(
  key: string,
  epoch: number,
  options: { readonly owned?: boolean; readonly signal?: AbortSignal } = {},
): ServeContext & { stillOwnedCalls: number } {
  const ctx = {
    key,
    epoch,
    signal: options.signal ?? new AbortController().signal,
    stillOwnedCalls: 0,
    stillOwned() {
      ctx.stillOwnedCalls += 1;
      return options.owned ?? true;
    },
  };
  return ctx;
}

function request(method: string, url: string, body: string | Uint8Array = ""): WorkerRequest {
  const q = url.indexOf("?");
  return {
    method,
    url,
    path: keyOfUrl(url),
    query: q === -1 ? "" : url.slice(q + 1),
    headers: {},
    body: typeof body === "string" ? new TextEncoder().encode(body) : body,
  };
}

/** Serves `method url` on `databases` under `epoch` and returns the status and parsed JSON body. */
async function call(
  databases: FencedDatabases,
  epoch: number,
  method: string,
  url: string,
  body: string | Uint8Array = "",
): Promise<{ status: number; json: any; response: WorkerResponse }> {
  const response = await databases.handle(request(method, url, body), context(keyOfUrl(url), epoch));
  assert.equal(response.headers?.["content-type"], "application/json");
  return { status: response.status ?? 200, json: JSON.parse(String(response.body)), response };
}

function isStale(epoch: number, fence: number): (error: unknown) => boolean {
  return (error: unknown) => StaleEpochError.is(error) && error.epoch === epoch && error.fence === fence;
}

describe("FencedDatabases", () => {
  it("names databases only by /db/<name> with a safe name", () => {
    assert.equal(FencedDatabases.nameOf("/db/users"), "users");
    assert.equal(FencedDatabases.nameOf("/db/A-z_09"), "A-z_09");
    assert.equal(FencedDatabases.nameOf(`/db/${"x".repeat(64)}`), "x".repeat(64));
    for (const bad of ["/db/", "/db", "/db/a b", "/db/../etc", "/db/a/b", "/db/a.sqlite", "/kv/users", `/db/${"x".repeat(65)}`]) {
      assert.equal(FencedDatabases.nameOf(bad), null, bad);
    }
    assert.throws(() => worker().acquire("/db/../x", 1), (e: unknown) => InvalidRequestError.is(e));
  });

  it("acquires a database, writes with PUT and POST, and reads the writes back", async () => {
    const a = worker();
    a.acquire(KEY, 5);
    const peek = new Database(join(dir, "users.sqlite"), { readonly: true });
    try {
      assert.equal(peek.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(peek.prepare("SELECT id, epoch FROM _fence").all(), [{ id: 1, epoch: 5 }]);
    } finally {
      peek.close();
    }
    assert.deepEqual(a.held(), [{ key: KEY, epoch: 5 }]);

    const put = await call(a, 5, "PUT", `${KEY}?k=alice`, "héllo");
    assert.equal(put.status, 200);
    assert.deepEqual(put.json, { ok: true, k: "alice", epoch: 5 });
    const post = await call(a, 5, "POST", KEY, JSON.stringify({ k: "bob", v: "world" }));
    assert.deepEqual(post.json, { ok: true, k: "bob", epoch: 5 });

    assert.deepEqual((await call(a, 5, "GET", `${KEY}?k=alice`)).json, { k: "alice", v: "héllo", epoch: 5 });
    const missing = await call(a, 5, "GET", `${KEY}?k=carol`);
    assert.equal(missing.status, 404);
    assert.deepEqual((await call(a, 5, "GET", KEY)).json, { name: "users", epoch: 5, items: { alice: "héllo", bob: "world" } });
  });

  it("deletes an item, answering whether it existed", async () => {
    const a = worker();
    a.acquire(KEY, 1);
    await call(a, 1, "PUT", `${KEY}?k=x`, "1");
    assert.deepEqual((await call(a, 1, "DELETE", `${KEY}?k=x`)).json, { ok: true, deleted: true });
    assert.deepEqual((await call(a, 1, "DELETE", `${KEY}?k=x`)).json, { ok: true, deleted: false });
    assert.equal((await call(a, 1, "GET", `${KEY}?k=x`)).status, 404);
  });

  it("refuses the writes of an older owner once a newer one acquires the same file", async () => {
    const a = worker();
    const b = worker();
    a.acquire(KEY, 5);
    assert.equal((await call(a, 5, "PUT", `${KEY}?k=early`, "from A")).status, 200);

    b.acquire(KEY, 9);
    await assert.rejects(call(a, 5, "PUT", `${KEY}?k=late`, "from A"), isStale(5, 9));
    await assert.rejects(call(a, 5, "POST", KEY, JSON.stringify({ k: "early", v: "overwritten" })), isStale(5, 9));
    await assert.rejects(call(a, 5, "DELETE", `${KEY}?k=early`), isStale(5, 9));
    // A deposed owner does not answer reads either: B may have written since.
    await assert.rejects(call(a, 5, "GET", KEY), isStale(5, 9));
    assert.equal((await call(b, 9, "PUT", `${KEY}?k=b`, "from B")).status, 200);

    const listing = await call(b, 9, "GET", KEY);
    assert.deepEqual(listing.json, { name: "users", epoch: 9, items: { b: "from B", early: "from A" } });
    assert.equal((await call(b, 9, "GET", `${KEY}?k=early`)).json.epoch, 5);
  });

  it("refuses an acquisition at an epoch below the fence, holding nothing", () => {
    const a = worker();
    a.acquire(KEY, 9);
    const b = worker();
    assert.throws(() => b.acquire(KEY, 5), isStale(5, 9));
    assert.deepEqual(b.held(), []);
    // The same instance refuses to go back to an older grant, and keeps the newer one.
    assert.throws(() => a.acquire(KEY, 4), isStale(4, 9));
    assert.deepEqual(a.held(), [{ key: KEY, epoch: 9 }]);
  });

  it("re-fences a database it holds when it acquires it again at a newer epoch", async () => {
    const a = worker();
    a.acquire(KEY, 3);
    a.acquire(KEY, 7);
    assert.deepEqual(a.held(), [{ key: KEY, epoch: 7 }]);
    assert.equal((await call(a, 7, "GET", KEY)).json.epoch, 7);
    // A request under the superseded grant is not served.
    const old = await call(a, 3, "PUT", `${KEY}?k=x`, "v");
    assert.equal(old.status, 409);
    assert.equal(old.response.headers?.[ROUTING_HEADERS.refused], "not-owner");
    assert.throws(() => worker().acquire(KEY, 6), isStale(6, 7));
  });

  it("refuses a late write whose owner was deposed during its delay, storing nothing of it", async () => {
    const a = worker();
    const b = worker();
    a.acquire(KEY, 5);
    const ctx = context(KEY, 5);
    // handle() runs synchronously up to the delay, so B acquires while A's write waits.
    const late = a.handle(request("PUT", `${KEY}?k=late&delayMs=50`, "from A"), ctx);
    b.acquire(KEY, 9);
    await assert.rejects(late, isStale(5, 9));
    // The lease check passed once, before the delay: the fence alone refused the write.
    assert.equal(ctx.stillOwnedCalls, 1);
    assert.equal((await call(b, 9, "GET", `${KEY}?k=late`)).status, 404);
    assert.deepEqual((await call(b, 9, "GET", KEY)).json.items, {});
  });

  it("writes after a delay when no newer owner acquired meanwhile", async () => {
    const a = worker();
    a.acquire(KEY, 5);
    const started = Date.now();
    assert.equal((await call(a, 5, "PUT", `${KEY}?k=x&delayMs=30`, "v")).status, 200);
    assert.ok(Date.now() - started >= 25);
    assert.equal((await call(a, 5, "GET", `${KEY}?k=x`)).json.v, "v");
  });

  it("abandons a delayed write when its signal aborts, writing nothing", async () => {
    const a = worker();
    a.acquire(KEY, 5);
    const controller = new AbortController();
    const pending = a.handle(request("PUT", `${KEY}?k=x&delayMs=10000`, "v"), context(KEY, 5, { signal: controller.signal }));
    const reason = new Error("client went away");
    controller.abort(reason);
    await assert.rejects(pending, (e: unknown) => e === reason);
    assert.equal((await call(a, 5, "GET", `${KEY}?k=x`)).status, 404);
  });

  it("answers not-owner for a database it does not hold, or when its grant is no longer servable", async () => {
    const a = worker();
    const notHeld = await call(a, 1, "GET", KEY);
    assert.equal(notHeld.status, 409);
    assert.equal(notHeld.response.headers?.[ROUTING_HEADERS.refused], "not-owner");
    a.acquire(KEY, 1);
    const lapsed = await a.handle(request("PUT", `${KEY}?k=x`, "v"), context(KEY, 1, { owned: false }));
    assert.equal(lapsed.status, 409);
    assert.equal(lapsed.headers?.[ROUTING_HEADERS.refused], "not-owner");
    assert.equal((await call(a, 1, "GET", `${KEY}?k=x`)).status, 404);
  });

  it("closes a database on release, after which it answers not-owner", async () => {
    const a = worker();
    a.acquire(KEY, 4);
    await call(a, 4, "PUT", `${KEY}?k=x`, "kept");
    a.release(KEY, 3);
    assert.deepEqual(a.held(), [{ key: KEY, epoch: 4 }], "a release at another epoch does nothing");
    a.release(KEY, 4);
    a.release(KEY, 4);
    assert.deepEqual(a.held(), []);
    const after = await call(a, 4, "PUT", `${KEY}?k=y`, "v");
    assert.equal(after.status, 409);
    assert.equal(after.response.headers?.[ROUTING_HEADERS.refused], "not-owner");
    // The next owner finds what was written before the release.
    const b = worker();
    b.acquire(KEY, 5);
    assert.equal((await call(b, 5, "GET", `${KEY}?k=x`)).json.v, "kept");
  });

  it("answers 404 for bad names, 405 for other methods, 413 for large values and 400 for bad input", async () => {
    const a = worker();
    a.acquire(KEY, 1);
    for (const url of ["/db/", "/db/a%20b", "/db/../x", "/other/users", `/db/${"x".repeat(65)}`]) {
      assert.equal((await call(a, 1, "GET", url)).status, 404, url);
    }
    const patch = await call(a, 1, "PATCH", `${KEY}?k=x`);
    assert.equal(patch.status, 405);
    assert.match(String(patch.response.headers?.allow), /PUT/);

    assert.equal((await call(a, 1, "PUT", `${KEY}?k=max`, new Uint8Array(VALUE_BYTES_MAX).fill(0x61))).status, 200);
    assert.equal((await call(a, 1, "PUT", `${KEY}?k=big`, new Uint8Array(VALUE_BYTES_MAX + 1).fill(0x61))).status, 413);
    const bigPost = JSON.stringify({ k: "big", v: "é".repeat(VALUE_BYTES_MAX / 2 + 1) });
    assert.equal((await call(a, 1, "POST", KEY, bigPost)).status, 413);

    const bad: Array<[string, string, string | Uint8Array]> = [
      ["POST", KEY, "{not json"],
      ["POST", KEY, "[1,2]"],
      ["POST", KEY, JSON.stringify({ v: "no k" })],
      ["POST", KEY, JSON.stringify({ k: "x", v: 5 })],
      ["PUT", KEY, "no k"],
      ["PUT", `${KEY}?k=`, "empty k"],
      ["PUT", `${KEY}?k=x`, new Uint8Array([0xff, 0xfe])],
      ["DELETE", KEY, ""],
      ["PUT", `${KEY}?k=x&delayMs=-1`, "v"],
      ["PUT", `${KEY}?k=x&delayMs=60001`, "v"],
      ["PUT", `${KEY}?k=x&delayMs=1.5`, "v"],
      ["POST", `${KEY}?delayMs=soon`, JSON.stringify({ k: "x", v: "v" })],
    ];
    for (const [method, url, body] of bad) {
      const answer = await call(a, 1, method, url, body);
      assert.equal(answer.status, 400, `${method} ${url}`);
      assert.equal(answer.json.error, "bad-request");
    }
    assert.deepEqual(Object.keys((await call(a, 1, "GET", KEY)).json.items), ["max"], "no refused write was stored");
  });

  it("lists items in key order, integer-like keys included", async () => {
    const a = worker();
    a.acquire(KEY, 2);
    for (const k of ["b", "10", "__proto__", "a", "9"]) await call(a, 2, "PUT", `${KEY}?k=${k}`, `v-${k}`);
    const listing = await call(a, 2, "GET", KEY);
    const text = String(listing.response.body);
    const order = [...text.matchAll(/"([^"]+)":"v-/g)].map((m) => m[1]);
    assert.deepEqual(order, ["10", "9", "__proto__", "a", "b"]);
    assert.equal(listing.json.truncated, undefined);
  });

  it(`bounds a listing at ${ITEMS_LIST_MAX} items and says it was truncated`, async () => {
    const a = worker();
    a.acquire(KEY, 2);
    // Fill through a second connection in one transaction: ten thousand fenced writes would each fsync.
    const direct = new Database(join(dir, "users.sqlite"));
    try {
      const insert = direct.prepare("INSERT INTO items (k, v, epoch) VALUES (?, ?, 2)");
      direct.transaction(() => {
        for (let i = 0; i <= ITEMS_LIST_MAX; i += 1) insert.run(`k${String(i).padStart(5, "0")}`, String(i));
      })();
    } finally {
      direct.close();
    }
    const listing = await call(a, 2, "GET", KEY);
    const keys = Object.keys(listing.json.items);
    assert.equal(keys.length, ITEMS_LIST_MAX);
    assert.equal(listing.json.truncated, true);
    assert.equal(keys[0], "k00000");
    assert.equal(keys.at(-1), `k0${ITEMS_LIST_MAX - 1}`);
  });
});
