/**
 * The storage half of the router example: a worker owns SQLite databases, one per resource key
 * `/db/<name>`, stored as `<dir>/<name>.sqlite` in a directory that every worker on the machine
 * shares. The file is the resource that moves between owners, so ownership alone (a lease) is not
 * enough: a paused or partitioned former owner may still hold an open handle. Each database
 * therefore carries its own fence, a one-row table `_fence` with the newest epoch that acquired it.
 * Acquiring raises the fence, and every write checks it inside the same IMMEDIATE transaction as
 * the write itself, so a write from an older epoch can never land once a newer owner has acquired.
 *
 * better-sqlite3 is synchronous: a transaction blocks the event loop, for up to
 * {@link BUSY_TIMEOUT_MS} when another connection holds the write lock. That is acceptable for an
 * example and keeps the fence check and the write in one uninterrupted step.
 */
import Database from "better-sqlite3";
import { join } from "node:path";
import { assert } from "../../lib/assert.ts";
import { InvalidRequestError, StaleEpochError } from "../../lib/errors.ts";
import { ROUTING_HEADERS, type ServeContext, type WorkerRequest, type WorkerResponse } from "../../lib/host/routing.ts";
import { silentLogger, type Logger } from "../../lib/logger.ts";

/** The most items a `GET /db/<name>` listing returns; beyond it the answer says `truncated: true`. */
export const ITEMS_LIST_MAX = 10_000;

/**
 * The most bytes of keys and values a listing returns (16 MiB); beyond it the answer says
 * `truncated: true`. Without it, {@link ITEMS_LIST_MAX} values of {@link VALUE_BYTES_MAX} would
 * make a 640 MiB answer.
 */
export const LIST_BYTES_MAX = 16 * 1024 * 1024;

/** The largest value, in UTF-8 bytes (64 KiB); a larger one is answered 413. */
export const VALUE_BYTES_MAX = 64 * 1024;

/** The longest item key `k`, in UTF-16 code units; a longer (or empty) one is answered 400. */
export const ITEM_KEY_LENGTH_MAX = 1024;

/**
 * The largest JSON body of a `POST` (512 KiB): room for a value of {@link VALUE_BYTES_MAX} even if
 * every byte were escaped as `\u00XX` (6 bytes), plus a key. A larger body is answered 413.
 */
export const POST_BODY_BYTES_MAX = 512 * 1024;

/** The longest `delayMs` a write may ask for (ms). */
export const DELAY_MS_MAX = 60_000;

/** How long SQLite waits for another connection's lock before failing with SQLITE_BUSY (ms). */
export const BUSY_TIMEOUT_MS = 5_000;

/** The database names a key may carry: `/db/<name>`. */
export const DATABASE_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const KEY_PREFIX = "/db/";
const ALLOWED_METHODS = "GET, PUT, POST, DELETE";

/** Options for {@link FencedDatabases}. */
export interface FencedDatabasesOptions {
  /** The directory of the database files, shared by every worker on the machine. It must exist. */
  readonly dir: string;
  /** @defaultValue silentLogger */
  readonly logger?: Logger;
}

/** A database this instance holds open, and the epoch it was last acquired at. */
interface Held {
  readonly db: Database.Database;
  epoch: number;
}

/** An answer, or the value a request parser extracted. */
type Parsed<T> = { readonly value: T } | { readonly response: WorkerResponse };

/**
 * The databases one worker owns, each fenced by epoch. Call {@link FencedDatabases.acquire} from
 * the worker's `onAcquire`, {@link FencedDatabases.release} from its `onRelease`, and
 * {@link FencedDatabases.handle} as its `handle`.
 */
export class FencedDatabases {
  private readonly dir: string;
  private readonly logger: Logger;
  /** invariant: a held database's `_fence.epoch` was raised to `epoch` when it was acquired. */
  private readonly databases = new Map<string, Held>();

  /** Holds nothing until {@link FencedDatabases.acquire}; opens no file by itself. */
  constructor(options: FencedDatabasesOptions) {
    this.dir = options.dir;
    this.logger = options.logger ?? silentLogger;
  }

  /** The database name of `key` (`/db/<name>` with a name matching {@link DATABASE_NAME_PATTERN}), or `null`. */
  static nameOf(key: string): string | null {
    if (!key.startsWith(KEY_PREFIX)) return null;
    const name = key.slice(KEY_PREFIX.length);
    return DATABASE_NAME_PATTERN.test(name) ? name : null;
  }

  /**
   * Opens the database of `key` (creating it and its tables if missing) and raises its fence to
   * `epoch`, which fences off every older owner at once. Acquiring a key this instance already
   * holds at a lower (or the same) epoch re-fences it at `epoch`.
   * @throws StaleEpochError when the fence (or this instance) already holds a newer epoch; the
   *   database is then not held.
   * @throws InvalidRequestError when `key` names no database or `epoch` is not a non-negative integer.
   */
  acquire(key: string, epoch: number): void {
    const name = FencedDatabases.nameOf(key);
    if (name === null) throw new InvalidRequestError(`${key} is not a database key /db/<name>`);
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new InvalidRequestError(`epoch ${epoch} is not a non-negative integer`);
    const existing = this.databases.get(key);
    if (existing !== undefined && existing.epoch > epoch) throw new StaleEpochError(key, epoch, existing.epoch);
    const db = existing?.db ?? this.open(name);
    try {
      raiseFence(db, key, epoch);
    } catch (error) {
      this.databases.delete(key);
      db.close();
      this.logger.warn("a database refused its acquisition", { key, epoch, error });
      throw error;
    }
    if (existing === undefined) this.databases.set(key, { db, epoch });
    else existing.epoch = epoch;
    this.logger.info("acquired a database", { key, epoch });
  }

  /** Closes the database of `key` if this instance holds it at `epoch`; otherwise does nothing. */
  release(key: string, epoch: number): void {
    const held = this.databases.get(key);
    if (held === undefined || held.epoch !== epoch) return;
    this.databases.delete(key);
    held.db.close();
    this.logger.info("released a database", { key, epoch });
  }

  /** The databases this instance holds, sorted by key. */
  held(): Array<{ key: string; epoch: number }> {
    return [...this.databases]
      .map(([key, { epoch }]) => ({ key, epoch }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Closes every database this instance holds. */
  close(): void {
    for (const { db } of this.databases.values()) db.close();
    this.databases.clear();
  }

  /**
   * Serves one routed request on `/db/<name>`:
   * - `GET` lists the items (`?k=x`: one item, or 404);
   * - `PUT ?k=x` stores the body (UTF-8 text) as the value of `x`;
   * - `POST` with a JSON body `{"k": "...", "v": "..."}` stores `v` as the value of `k`;
   * - `DELETE ?k=x` removes `x`.
   *
   * Writes take an optional `delayMs=N` (0 to {@link DELAY_MS_MAX}): the write then waits N ms
   * after checking `ctx.stillOwned()` and before its transaction, so a test can pause the worker
   * mid-write and watch the fence refuse the late write.
   * @throws StaleEpochError when the database's fence holds a newer epoch than `ctx.epoch`
   *   (the worker answers 409 `x-orrery-refused: stale-epoch`).
   * @throws the abort reason of `ctx.signal` when it aborts during a delay; nothing is written.
   */
  async handle(request: WorkerRequest, ctx: ServeContext): Promise<WorkerResponse> {
    const key = request.path;
    const name = FencedDatabases.nameOf(key);
    if (name === null) return failure(404, "not-found", `${key} is not a database key /db/<name>`);
    const params = new URLSearchParams(request.query);
    switch (request.method) {
      case "GET":
        return this.read(key, name, params, ctx);
      case "PUT":
      case "POST":
      case "DELETE":
        return this.write(request, key, params, ctx);
      default: {
        const refused = failure(405, "method-not-allowed", `${request.method} is not one of ${ALLOWED_METHODS}`);
        return { ...refused, headers: { ...refused.headers, allow: ALLOWED_METHODS } };
      }
    }
  }

  private open(name: string): Database.Database {
    const db = new Database(join(this.dir, `${name}.sqlite`), { timeout: BUSY_TIMEOUT_MS });
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.exec(
        "CREATE TABLE IF NOT EXISTS _fence (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);" +
          "CREATE TABLE IF NOT EXISTS items (k TEXT PRIMARY KEY, v TEXT NOT NULL, epoch INTEGER NOT NULL);",
      );
    } catch (error) {
      db.close();
      throw error;
    }
    return db;
  }

  /** The database of `key` if this instance holds it at exactly `epoch`. */
  private heldAt(key: string, epoch: number): Held | null {
    const held = this.databases.get(key);
    return held !== undefined && held.epoch === epoch ? held : null;
  }

  private read(key: string, name: string, params: URLSearchParams, ctx: ServeContext): WorkerResponse {
    const held = this.heldAt(key, ctx.epoch);
    if (held === null || !ctx.stillOwned()) return notOwner(key, ctx.epoch);
    const k = params.get("k");
    // A deposed owner must not answer either: a newer owner may have written since. The deferred
    // transaction reads the fence and the items from one snapshot.
    return held.db.transaction(() => {
      const fence = checkFence(held.db, key, ctx.epoch);
      if (k === null) return listing(held.db, name, fence);
      const row = held.db.prepare("SELECT v, epoch FROM items WHERE k = ?").get(k) as { v: string; epoch: number } | undefined;
      if (row === undefined) return failure(404, "not-found", `no item ${JSON.stringify(k)} in ${name}`);
      return json(200, { k, v: row.v, epoch: row.epoch });
    })();
  }

  private async write(request: WorkerRequest, key: string, params: URLSearchParams, ctx: ServeContext): Promise<WorkerResponse> {
    const delay = parseDelay(params);
    if ("response" in delay) return delay.response;
    const op = parseWrite(request, params);
    if ("response" in op) return op.response;
    if (this.heldAt(key, ctx.epoch) === null || !ctx.stillOwned()) return notOwner(key, ctx.epoch);
    // Deliberately no second `stillOwned()` after the delay: the point of the delay is to show that
    // the fence alone refuses a write that outlived its grant, whatever the lease check would say.
    if (delay.value > 0) await sleep(delay.value, ctx.signal);
    ctx.signal.throwIfAborted();
    // The database may have been released (and closed) while this request waited.
    const held = this.heldAt(key, ctx.epoch);
    if (held === null) return notOwner(key, ctx.epoch);
    const { db } = held;
    return db.transaction(() => {
      checkFence(db, key, ctx.epoch);
      if (op.value.kind === "delete") {
        const deleted = db.prepare("DELETE FROM items WHERE k = ?").run(op.value.k).changes > 0;
        return json(200, { ok: true, deleted });
      }
      db.prepare(
        "INSERT INTO items (k, v, epoch) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v, epoch = excluded.epoch",
      ).run(op.value.k, op.value.v, ctx.epoch);
      return json(200, { ok: true, k: op.value.k, epoch: ctx.epoch });
    }).immediate();
  }
}

/** Raises the fence of `db` to `epoch`, in one IMMEDIATE transaction. @throws StaleEpochError */
function raiseFence(db: Database.Database, key: string, epoch: number): void {
  db.transaction(() => {
    const row = db.prepare("SELECT epoch FROM _fence WHERE id = 1").get() as { epoch: number } | undefined;
    if (row !== undefined && row.epoch > epoch) throw new StaleEpochError(key, epoch, row.epoch);
    db.prepare("INSERT INTO _fence (id, epoch) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch").run(epoch);
  }).immediate();
}

/**
 * Returns the fence epoch of `db`, run inside the caller's transaction.
 * @throws StaleEpochError when it is newer than `epoch`.
 */
function checkFence(db: Database.Database, key: string, epoch: number): number {
  const row = db.prepare("SELECT epoch FROM _fence WHERE id = 1").get() as { epoch: number } | undefined;
  assert(row !== undefined, () => `${key} is held but has no fence`);
  if (row.epoch > epoch) throw new StaleEpochError(key, epoch, row.epoch);
  // Only acquire writes the fence, and it raised it to the epoch held: a lower one means a bug.
  assert(row.epoch === epoch, () => `${key} is held at epoch ${epoch} but fenced at ${row.epoch}`);
  return row.epoch;
}

/**
 * The listing of a database, sorted by key in code point order (SQLite's BINARY collation). The
 * items object is serialized by hand: a JavaScript object would move integer-like keys to the
 * front and treat `__proto__` specially.
 */
function listing(db: Database.Database, name: string, fence: number): WorkerResponse {
  const members: string[] = [];
  let bytes = 0;
  let truncated = false;
  const rows = db.prepare("SELECT k, v FROM items ORDER BY k LIMIT ?").iterate(ITEMS_LIST_MAX + 1) as IterableIterator<{ k: string; v: string }>;
  for (const { k, v } of rows) {
    const member = `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    const memberBytes = Buffer.byteLength(member, "utf8");
    if (members.length === ITEMS_LIST_MAX || bytes + memberBytes > LIST_BYTES_MAX) {
      truncated = true;
      break;
    }
    members.push(member);
    bytes += memberBytes;
  }
  const head = `{"name":${JSON.stringify(name)},"epoch":${fence},"items":{${members.join(",")}}`;
  return { status: 200, headers: { "content-type": "application/json" }, body: `${head}${truncated ? ',"truncated":true' : ""}}` };
}

type WriteOp = { readonly kind: "put"; readonly k: string; readonly v: string } | { readonly kind: "delete"; readonly k: string };

function parseWrite(request: WorkerRequest, params: URLSearchParams): Parsed<WriteOp> {
  if (request.method === "POST") return parsePost(request.body);
  const k = parseItemKey(params.get("k"));
  if ("response" in k) return k;
  if (request.method === "DELETE") return { value: { kind: "delete", k: k.value } };
  if (request.body.byteLength > VALUE_BYTES_MAX) return refuse(413, "too-large", `a value is at most ${VALUE_BYTES_MAX} bytes`);
  let v: string;
  try {
    v = new TextDecoder("utf-8", { fatal: true }).decode(request.body);
  } catch {
    return refuse(400, "bad-request", "the value is not UTF-8 text");
  }
  return { value: { kind: "put", k: k.value, v } };
}

function parsePost(body: Uint8Array): Parsed<WriteOp> {
  if (body.byteLength > POST_BODY_BYTES_MAX) return refuse(413, "too-large", `a JSON body is at most ${POST_BODY_BYTES_MAX} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return refuse(400, "bad-request", "the body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return refuse(400, "bad-request", 'the body is not a JSON object {"k": "...", "v": "..."}');
  }
  const { k, v } = parsed as { k?: unknown; v?: unknown };
  const key = parseItemKey(typeof k === "string" ? k : null);
  if ("response" in key) return key;
  if (typeof v !== "string") return refuse(400, "bad-request", "v is not a string");
  if (Buffer.byteLength(v, "utf8") > VALUE_BYTES_MAX) return refuse(413, "too-large", `a value is at most ${VALUE_BYTES_MAX} bytes`);
  return { value: { kind: "put", k: key.value, v } };
}

function parseItemKey(k: string | null): Parsed<string> {
  if (k === null || k.length === 0 || k.length > ITEM_KEY_LENGTH_MAX) {
    return refuse(400, "bad-request", `k must be a string of 1 to ${ITEM_KEY_LENGTH_MAX} characters`);
  }
  return { value: k };
}

function parseDelay(params: URLSearchParams): Parsed<number> {
  const text = params.get("delayMs");
  if (text === null) return { value: 0 };
  const delayMs = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(delayMs <= DELAY_MS_MAX)) return refuse(400, "bad-request", `delayMs must be an integer from 0 to ${DELAY_MS_MAX}`);
  return { value: delayMs };
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function json(status: number, body: unknown): WorkerResponse {
  return { status, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

function failure(status: number, error: string, message: string): WorkerResponse {
  return json(status, { error, message });
}

/** A parser's refusal: {@link failure} wrapped as a {@link Parsed}. */
function refuse(status: number, error: string, message: string): { readonly response: WorkerResponse } {
  return { response: failure(status, error, message) };
}

function notOwner(key: string, epoch: number): WorkerResponse {
  return {
    status: 409,
    headers: { "content-type": "application/json", [ROUTING_HEADERS.refused]: "not-owner" },
    body: JSON.stringify({ error: "refused", reason: "not-owner", message: `this worker does not hold ${key} at epoch ${epoch}` }),
  };
}
