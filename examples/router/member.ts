/**
 * One member of the path-routed example as a process: the file WAL, a TCP or HTTP transport, the
 * placement table, and the gateway that routes every other HTTP path to the worker that owns it.
 * `orrery member` runs this.
 *
 *     orrery member --id m1 --members m1=127.0.0.1:7001,m2=127.0.0.1:7002,m3=127.0.0.1:7003 \
 *                   --data ./data/m1 --gateway 127.0.0.1:8001 --workers w1,w2,w3
 *
 * SIGINT or SIGTERM shuts it down gracefully (gateway first, then leadership handed over).
 */
import { parseArgs } from "node:util";
import {
  ConfigError,
  createPlacementMember,
  jsonLogger,
  LEASE_MS_DEFAULT,
  workerAdmission,
  type Logger,
  type LogLevel,
  type PlacementMember,
} from "../../lib/index.ts";
import { FileStorage } from "../../lib/storage/file.ts";
import { createHttpTransport } from "../../transports/http/http.ts";
import { createTcpTransport } from "../../transports/tcp/tcp.ts";
import type { Transport, TransportOptions } from "../../transports/transport.ts";
import { CONNECTION_OPTIONS, connectionArgs, defaultClient, parseList, positiveInteger, required, untilSignal, type TlsFiles } from "../cli.ts";

/** The usage text of `orrery member`. */
export const ROUTER_MEMBER_USAGE = `Usage: orrery member --id ID --members ID=HOST:PORT,... --data DIR [options]

Runs one member of a placement cluster: the Raft log of who owns which resource (file WAL), and
a gateway that routes each HTTP request by its path to the worker that owns that path.

Options:
  --id ID                 this member's id (required)
  --members LIST          every member's transport address, ID=HOST:PORT,... (required)
  --data DIR              the member's WAL directory (required)
  --gateway HOST:PORT     where the gateway listens (default: the member's host, its port + 1000)
  --workers LIST          worker ids allowed to join, w1,w2,... (default: any worker that knows
                          the secret)
  --transport tcp|http    how members and workers talk (default tcp)
  --join                  join an existing cluster (a leader adds this member)
  --cluster ID            the cluster id checked in every handshake (default "orrery")
  --secret-file FILE      a shared secret every member and worker must know
  --tls-cert FILE --tls-key FILE [--tls-ca FILE]   serve and connect over TLS
  --lease-ms N            the worker lease, the same on every member and worker (default ${LEASE_MS_DEFAULT})
  --tick-ms N             milliseconds per Raft tick (default 10)
  --log-level LEVEL       debug|info|warn|error|silent (default info; logs go to stderr)

The gateway also answers GET /health/live, /health/ready, /metrics and /status.
`;

/** Parsed command line of a router member. */
export interface RouterMemberArgs {
  readonly id: string;
  readonly members: Record<string, string>;
  readonly data: string;
  readonly gateway: string;
  readonly workers?: readonly string[];
  readonly transport: "tcp" | "http";
  readonly join: boolean;
  readonly cluster: string;
  readonly secret?: string;
  readonly tls?: TlsFiles;
  readonly leaseMs: number;
  readonly tickMs: number;
  readonly logLevel: LogLevel;
}

/** Parses `orrery member`'s arguments. @throws ConfigError naming the bad option */
export function parseRouterMemberArgs(args: readonly string[]): RouterMemberArgs {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    options: {
      id: { type: "string" },
      members: { type: "string" },
      data: { type: "string" },
      gateway: { type: "string" },
      workers: { type: "string" },
      join: { type: "boolean", default: false },
      "lease-ms": { type: "string", default: String(LEASE_MS_DEFAULT) },
      "tick-ms": { type: "string", default: "10" },
      ...CONNECTION_OPTIONS,
    },
  });
  const id = required(values.id, "--id");
  const members = parseList(required(values.members, "--members"), "--members");
  if (!values.join && members[id] === undefined) throw new ConfigError("--members", `must include --id ${id}`);
  return {
    id,
    members,
    data: required(values.data, "--data"),
    gateway: values.gateway ?? defaultClient(members[id]),
    ...(values.workers === undefined ? {} : { workers: values.workers.split(",").filter((w) => w.length > 0) }),
    ...connectionArgs(values),
    join: values.join ?? false,
    leaseMs: positiveInteger(values["lease-ms"] as string, "--lease-ms"),
    tickMs: positiveInteger(values["tick-ms"] as string, "--tick-ms"),
  };
}

/** Starts a router member from parsed arguments. */
export async function startRouterMember(args: RouterMemberArgs, logger: Logger): Promise<PlacementMember> {
  const storage = await FileStorage.open(args.data);
  logger.info("opened the WAL", { data: args.data, recovery: storage.recovery });
  const options: TransportOptions = {
    id: args.id,
    clusterId: args.cluster,
    listen: args.members[args.id] ?? "127.0.0.1:0",
    peers: args.members,
    admit: workerAdmission(args.workers === undefined ? {} : { workers: args.workers }),
    ...(args.secret === undefined ? {} : { secret: args.secret }),
    ...(args.tls === undefined ? {} : { tls: args.tls }),
    logger,
  };
  const transport: Transport = args.transport === "tcp" ? createTcpTransport(options) : createHttpTransport(options);
  const member = await createPlacementMember({
    id: args.id,
    members: args.members,
    join: args.join,
    transport,
    storage,
    tickMs: args.tickMs,
    lease: { leaseMs: args.leaseMs },
    gateway: { listen: args.gateway },
    logger,
  });
  logger.info("member ready", { node: args.id, transport: args.transport, peers: transport.address(), gateway: member.gateway?.address() });
  return member;
}

/** Runs a router member until SIGINT or SIGTERM; resolves to the exit status. */
export async function runRouterMember(argv: readonly string[], err: (text: string) => void): Promise<number> {
  let args: RouterMemberArgs;
  try {
    args = parseRouterMemberArgs(argv);
  } catch (error) {
    err(`orrery member: ${(error as Error).message}\n\n${ROUTER_MEMBER_USAGE}`);
    return 2;
  }
  const logger = jsonLogger({ level: args.logLevel, write: err, base: { node: args.id } });
  const member = await startRouterMember(args, logger);
  return untilSignal(logger, () => member.close());
}
