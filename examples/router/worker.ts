/**
 * One worker of the path-routed example as a process: it joins the cluster and serves the SQLite
 * databases it owns (`/db/<name>`, files in a folder every worker on the machine shares), each
 * opened only while owned and fenced by the grant's epoch. `orrery worker` runs this.
 *
 *     orrery worker --id w1 --members m1=127.0.0.1:7001,m2=127.0.0.1:7002,m3=127.0.0.1:7003 \
 *                   --dir ./data/databases
 *
 * Once it has joined it prints one JSON line to stdout: `{"event":"ready","worker":"w1","address":...}`.
 * SIGINT or SIGTERM leaves gracefully: its databases move to other workers, then it exits.
 */
import { parseArgs } from "node:util";
import { createWorker, jsonLogger, LEASE_MS_DEFAULT, workerPeerId, type Logger, type LogLevel, type OrreryWorker } from "../../lib/index.ts";
import { createHttpTransport } from "../../transports/http/http.ts";
import { createTcpTransport } from "../../transports/tcp/tcp.ts";
import { CONNECTION_OPTIONS, connectionArgs, parseList, positiveInteger, required, untilSignal, type TlsFiles } from "../cli.ts";
import { FencedDatabases } from "./databases.ts";

/** The usage text of `orrery worker`. */
export const ROUTER_WORKER_USAGE = `Usage: orrery worker --id ID --members ID=HOST:PORT,... --dir DIR [options]

Runs one worker of the path-routed SQLite example: it owns some of the databases /db/<name>
(files in DIR, shared by every worker), serves them while its lease holds, and refuses any write
whose epoch is older than the database's fence.

Options:
  --id ID                 this worker's id (required)
  --members LIST          every member's transport address, ID=HOST:PORT,... (required)
  --dir DIR               the folder of database files (required)
  --listen HOST:PORT      where routed requests arrive (default 127.0.0.1:0, any free port)
  --transport tcp|http    how members talk (default tcp)
  --cluster ID            the cluster id (default "orrery")
  --secret-file FILE      the cluster's shared secret
  --tls-cert FILE --tls-key FILE [--tls-ca FILE]   connect over TLS
  --capacity N            relative capacity (default 1)
  --zone NAME             failure domain (default "default")
  --lease-ms N            the lease, as the members have it (default ${LEASE_MS_DEFAULT})
  --log-level LEVEL       debug|info|warn|error|silent (default info; logs go to stderr)

Requests (through any member's gateway): GET /db/<name>, GET /db/<name>?k=K,
PUT /db/<name>?k=K (body: the value), POST /db/<name> {"k":..,"v":..}, DELETE /db/<name>?k=K.
`;

/** Parsed command line of a router worker. */
export interface RouterWorkerArgs {
  readonly id: string;
  readonly members: Record<string, string>;
  readonly dir: string;
  readonly listen: string;
  readonly transport: "tcp" | "http";
  readonly cluster: string;
  readonly secret?: string;
  readonly tls?: TlsFiles;
  readonly capacity: number;
  readonly zone: string;
  readonly leaseMs: number;
  readonly logLevel: LogLevel;
}

/** Parses `orrery worker`'s arguments. @throws ConfigError naming the bad option */
export function parseRouterWorkerArgs(args: readonly string[]): RouterWorkerArgs {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    options: {
      id: { type: "string" },
      members: { type: "string" },
      dir: { type: "string" },
      listen: { type: "string", default: "127.0.0.1:0" },
      capacity: { type: "string", default: "1" },
      zone: { type: "string", default: "default" },
      "lease-ms": { type: "string", default: String(LEASE_MS_DEFAULT) },
      ...CONNECTION_OPTIONS,
    },
  });
  return {
    id: required(values.id, "--id"),
    members: parseList(required(values.members, "--members"), "--members"),
    dir: required(values.dir, "--dir"),
    listen: values.listen as string,
    ...connectionArgs(values),
    capacity: positiveInteger(values.capacity as string, "--capacity"),
    zone: values.zone as string,
    leaseMs: positiveInteger(values["lease-ms"] as string, "--lease-ms"),
  };
}

/** Starts a router worker from parsed arguments: the databases, then the worker. */
export async function startRouterWorker(args: RouterWorkerArgs, logger: Logger): Promise<{ worker: OrreryWorker; databases: FencedDatabases }> {
  const databases = new FencedDatabases({ dir: args.dir, logger });
  const common = {
    id: workerPeerId(args.id),
    clusterId: args.cluster,
    peers: args.members,
    logger,
    ...(args.secret === undefined ? {} : { secret: args.secret }),
    ...(args.tls === undefined ? {} : { tls: args.tls }),
  };
  // A worker dials members (TCP) or gives them its own address with each request (HTTP).
  const transport =
    args.transport === "http"
      ? createHttpTransport({ ...common, listen: "127.0.0.1:0" })
      : createTcpTransport({ ...common, listen: "127.0.0.1:0", dialAlways: true });
  const worker = await createWorker({
    id: args.id,
    members: args.members,
    transport,
    listen: args.listen,
    capacity: args.capacity,
    zone: args.zone,
    lease: { leaseMs: args.leaseMs },
    onAcquire: (key, epoch) => {
      databases.acquire(key, epoch);
      logger.info("acquired", { key, epoch });
    },
    onRelease: (key, epoch) => {
      databases.release(key, epoch);
      logger.info("released", { key, epoch });
    },
    handle: (request, context) => databases.handle(request, context),
    logger,
  });
  return { worker, databases };
}

/** Runs a router worker until SIGINT or SIGTERM (then leaves gracefully); resolves to the exit status. */
export async function runRouterWorker(
  argv: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  let args: RouterWorkerArgs;
  try {
    args = parseRouterWorkerArgs(argv);
  } catch (error) {
    err(`orrery worker: ${(error as Error).message}\n\n${ROUTER_WORKER_USAGE}`);
    return 2;
  }
  const logger = jsonLogger({ level: args.logLevel, write: err, base: { worker: args.id } });
  const { worker, databases } = await startRouterWorker(args, logger);
  void worker.ready(10 * 60_000).then(
    () => out(`${JSON.stringify({ event: "ready", worker: args.id, address: worker.address() })}\n`),
    (error: unknown) => logger.error("the worker did not join", { error }),
  );
  return untilSignal(logger, async () => {
    await worker.close();
    databases.close();
  });
}
