/**
 * etcd as the yardstick of `bench/cluster.ts`: find the binary, start a 3-member cluster on loopback
 * with default (durable, fsync-per-commit) settings, find its leader, and write to it through the
 * HTTP/JSON gateway (`POST /v3/kv/put`), the nearest thing etcd has to orrery's `PUT /kv/<key>`.
 *
 * The gateway translates JSON to a gRPC call inside etcd, so it costs etcd something its native gRPC
 * clients do not pay; `bench/README.md` says what that means for the comparison.
 */
import { execFile } from "node:child_process";
import { access, constants, mkdir } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import {
  assertRunning,
  freePorts,
  spawnMember,
  tryFetch,
  waitFor,
  type MemberProcess,
  type WriteTarget,
} from "./cluster-load.ts";

/** Where Debian's `etcd-server` package puts the binary, tried when it is not on PATH. */
const ETCD_FALLBACK_PATHS = ["/usr/bin/etcd", "/usr/local/bin/etcd"] as const;
/** How long `etcd --version` may take. */
const VERSION_TIMEOUT_MS = 5_000;
/** How long a new cluster may take to elect a leader and report healthy on every member. */
export const ETCD_READY_TIMEOUT_MS = 30_000;
/** How often readiness is polled. */
const POLL_INTERVAL_MS = 100;
/** How long one health or status request may take. */
const CONTROL_REQUEST_TIMEOUT_MS = 2_000;

/** An etcd binary that was found, with its version. */
export interface EtcdBinary {
  readonly path: string;
  /** e.g. "3.4.23". */
  readonly version: string;
  /** The JSON gateway's path prefix for this version: "/v3/" from 3.4 on. */
  readonly gatewayPrefix: string;
}

/** A running etcd cluster. */
export interface EtcdCluster {
  readonly members: readonly MemberProcess[];
  /** Member name → client URL origin (`http://127.0.0.1:port`). */
  readonly clientOrigins: ReadonlyMap<string, string>;
}

/** The gateway prefix by version: `/v3alpha/` in 3.2, `/v3beta/` in 3.3, `/v3/` from 3.4 on. */
export function etcdGatewayPrefix(version: string): string {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major > 3 || (major === 3 && minor >= 4)) return "/v3/";
  return minor === 3 ? "/v3beta/" : "/v3alpha/";
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `etcd` on PATH, then in {@link ETCD_FALLBACK_PATHS}; `null` if none. */
async function locateEtcd(): Promise<string | null> {
  const onPath = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "").map((dir) => join(dir, "etcd"));
  for (const path of [...onPath, ...ETCD_FALLBACK_PATHS]) {
    if (await isExecutable(path)) return path;
  }
  return null;
}

/**
 * Finds etcd (`explicitPath` if given) and reads its version from `etcd --version`. Resolves to
 * `{ reason }` when there is none or it does not run, so that the benchmark can say why it skipped.
 */
export async function findEtcd(explicitPath?: string): Promise<EtcdBinary | { reason: string }> {
  const path = explicitPath ?? (await locateEtcd());
  if (path === null) return { reason: `no etcd binary on PATH or at ${ETCD_FALLBACK_PATHS.join(", ")}` };
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(path, ["--version"], { timeout: VERSION_TIMEOUT_MS }));
  } catch (error) {
    return { reason: `${path} --version failed: ${(error as Error).message}` };
  }
  const match = /etcd Version:\s*(\d+\.\d+\.\d+)/.exec(stdout);
  if (match === null) return { reason: `unrecognised output of ${path} --version: ${stdout.trim()}` };
  const version = match[1] as string;
  return { path, version, gatewayPrefix: etcdGatewayPrefix(version) };
}

/** One etcd member's address and name. */
interface EtcdMemberSpec {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
}

/** The command line of one etcd member: defaults everywhere except addresses and quieter logs. */
export function etcdMemberArgs(
  member: EtcdMemberSpec,
  all: readonly EtcdMemberSpec[],
  options: { dataDir: string; token: string; version: string },
): string[] {
  const client = `http://127.0.0.1:${member.clientPort}`;
  const peer = `http://127.0.0.1:${member.peerPort}`;
  const initialCluster = all.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
  // --logger zap and --log-level exist from 3.4 on; older members log at their default level.
  const logging = etcdGatewayPrefix(options.version) === "/v3/" ? ["--logger", "zap", "--log-level", "warn"] : [];
  return [
    "--name", member.name,
    "--data-dir", options.dataDir,
    "--listen-client-urls", client,
    "--advertise-client-urls", client,
    "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer,
    "--initial-cluster", initialCluster,
    "--initial-cluster-state", "new",
    "--initial-cluster-token", options.token,
    ...logging,
  ];
}

/** Starts `size` etcd members with data under `dir` and waits until each reports healthy. */
export async function startEtcdCluster(binary: EtcdBinary, dir: string, size: number): Promise<EtcdCluster> {
  const ports = await freePorts(2 * size);
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `e${i + 1}`,
    clientPort: ports[2 * i] as number,
    peerPort: ports[2 * i + 1] as number,
  }));
  const token = `orrery-bench-${process.pid}-${Date.now()}`;
  const members: MemberProcess[] = [];
  for (const spec of specs) {
    const dataDir = join(dir, spec.name);
    await mkdir(dataDir, { recursive: true });
    const args = etcdMemberArgs(spec, specs, { dataDir, token, version: binary.version });
    members.push(spawnMember(spec.name, binary.path, args));
  }
  const clientOrigins = new Map(specs.map((spec) => [spec.name, `http://127.0.0.1:${spec.clientPort}`]));
  const cluster = { members, clientOrigins };
  await waitFor(async () => (await allHealthy(cluster)) || null, {
    timeoutMs: ETCD_READY_TIMEOUT_MS,
    intervalMs: POLL_INTERVAL_MS,
    describe: () => `etcd did not become healthy in ${ETCD_READY_TIMEOUT_MS} ms`,
  });
  return cluster;
}

/** Whether every member answers `GET /health` with `{"health":"true"}`; throws if one has exited. */
async function allHealthy(cluster: EtcdCluster): Promise<boolean> {
  assertRunning(cluster.members);
  for (const origin of cluster.clientOrigins.values()) {
    const response = await tryFetch(`${origin}/health`, {}, CONTROL_REQUEST_TIMEOUT_MS);
    if (response === null || !response.ok) return false;
    const body = (await response.json()) as { health?: unknown };
    if (body.health !== "true") return false;
  }
  return true;
}

/** The status gateway's answer: uint64 ids come as decimal strings. */
interface EtcdStatus {
  readonly header?: { readonly member_id?: string };
  readonly leader?: string;
}

/**
 * The name of the member that is leader, from `POST <prefix>maintenance/status` on each member
 * (the one whose `header.member_id` equals its `leader`); `null` if no member says it leads.
 */
export async function findEtcdLeader(cluster: EtcdCluster, gatewayPrefix: string): Promise<string | null> {
  for (const [name, origin] of cluster.clientOrigins) {
    const response = await tryFetch(
      `${origin}${gatewayPrefix}maintenance/status`,
      { method: "POST", body: "{}", headers: { "content-type": "application/json" } },
      CONTROL_REQUEST_TIMEOUT_MS,
    );
    if (response === null || !response.ok) continue;
    const status = (await response.json()) as EtcdStatus;
    const self = status.header?.member_id;
    if (self !== undefined && self === status.leader) return name;
  }
  return null;
}

/** Waits for a leader (see {@link findEtcdLeader}) and returns its name. */
export async function waitForEtcdLeader(cluster: EtcdCluster, gatewayPrefix: string): Promise<string> {
  return waitFor(
    async () => {
      assertRunning(cluster.members);
      return findEtcdLeader(cluster, gatewayPrefix);
    },
    {
      timeoutMs: ETCD_READY_TIMEOUT_MS,
      intervalMs: POLL_INTERVAL_MS,
      describe: () => `no etcd member reported itself leader in ${ETCD_READY_TIMEOUT_MS} ms`,
    },
  );
}

/** Writes through the JSON gateway: `POST <prefix>kv/put` with base64 key and value. */
export function etcdPutTarget(origin: string, gatewayPrefix: string): WriteTarget {
  const path = `${gatewayPrefix}kv/put`;
  const headers = { "content-type": "application/json" };
  let cachedValue = "";
  let cachedValueBase64 = "";
  return {
    origin,
    write: (key, value) => {
      // Every write of a load carries the same value: encode it once.
      if (value !== cachedValue) {
        cachedValue = value;
        cachedValueBase64 = Buffer.from(value).toString("base64");
      }
      const body = `{"key":"${Buffer.from(key).toString("base64")}","value":"${cachedValueBase64}"}`;
      return { method: "POST", path, headers, body };
    },
    succeeded: (statusCode) => statusCode === 200,
  };
}
