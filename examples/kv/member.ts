/**
 * One member of the key-value example as a process: the file WAL, a TCP or HTTP transport, the
 * node, and the HTTP API. `orrery node` and `examples/kv/main.ts` both run this.
 *
 *     orrery node --id n1 --members n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 \
 *                 --data ./data/n1 --transport tcp --client 127.0.0.1:8001
 *
 * SIGINT or SIGTERM shuts it down gracefully: the API stops, a leader hands leadership over, the
 * WAL closes. A second signal exits at once.
 */
import { parseArgs } from "node:util";
import { ConfigError, createNode, jsonLogger, type Logger, type LogLevel, type OrreryNode } from "../../lib/index.ts";
import { FileStorage } from "../../lib/storage/file.ts";
import { createHttpTransport } from "../../transports/http/http.ts";
import { createTcpTransport } from "../../transports/tcp/tcp.ts";
import type { Transport, TransportOptions } from "../../transports/transport.ts";
import { CONNECTION_OPTIONS, connectionArgs, defaultClient, parseList, positiveInteger, required, untilSignal, type TlsFiles } from "../cli.ts";
import { startKvService, type KvService } from "./service.ts";
import { KvStore, type KvResult } from "./store.ts";

/** The usage text of `orrery node`. */
export const MEMBER_USAGE = `Usage: orrery node --id ID --members ID=HOST:PORT,... --data DIR [options]

Runs one member of a replicated key-value service (examples/kv) with the file WAL.

Options:
  --id ID                 this member's id (required)
  --members LIST          every member's transport address, ID=HOST:PORT,... (required)
  --data DIR              the member's WAL directory (required)
  --transport tcp|http    how members talk (default tcp)
  --client HOST:PORT      where the key-value HTTP API listens
                          (default: the member's host, its port + 1000)
  --clients LIST          every member's API address, ID=HOST:PORT,... (for --redirect and
                          for error bodies naming the leader's URL)
  --redirect              answer writes on a follower with 307 to the leader instead of
                          forwarding them
  --join                  join an existing cluster (a leader adds this member)
  --cluster ID            the cluster id checked in every handshake (default "orrery")
  --secret-file FILE      a shared secret every member must know
  --tls-cert FILE --tls-key FILE [--tls-ca FILE]   serve and connect over TLS
  --tick-ms N             milliseconds per Raft tick (default 10)
  --log-level LEVEL       debug|info|warn|error|silent (default info; logs go to stderr)

The API: GET/PUT/DELETE /kv/<key>, POST /kv/<key>?cas, GET /status, /metrics,
/health/live, /health/ready. See examples/kv/README.md.
`;

/** Parsed command line of a member. */
export interface MemberArgs {
  readonly id: string;
  readonly members: Record<string, string>;
  readonly data: string;
  readonly transport: "tcp" | "http";
  readonly client: string;
  readonly clients: Record<string, string>;
  readonly redirect: boolean;
  readonly join: boolean;
  readonly cluster: string;
  readonly secret?: string;
  readonly tls?: TlsFiles;
  readonly tickMs: number;
  readonly logLevel: LogLevel;
}

/** Parses `orrery node`'s arguments. @throws ConfigError naming the bad option */
export function parseMemberArgs(args: readonly string[]): MemberArgs {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    options: {
      id: { type: "string" },
      members: { type: "string" },
      data: { type: "string" },
      client: { type: "string" },
      clients: { type: "string" },
      redirect: { type: "boolean", default: false },
      join: { type: "boolean", default: false },
      "tick-ms": { type: "string", default: "10" },
      ...CONNECTION_OPTIONS,
    },
  });
  const id = required(values.id, "--id");
  const members = parseList(required(values.members, "--members"), "--members");
  if (!values.join && members[id] === undefined) throw new ConfigError("--members", `must include --id ${id}`);
  const connection = connectionArgs(values);
  return {
    id,
    members,
    data: required(values.data, "--data"),
    ...connection,
    client: values.client ?? defaultClient(members[id]),
    clients: values.clients === undefined ? {} : parseList(values.clients, "--clients"),
    redirect: values.redirect ?? false,
    join: values.join ?? false,
    tickMs: positiveInteger(values["tick-ms"] as string, "--tick-ms"),
  };
}

/** A running member. */
export interface RunningMember {
  readonly node: OrreryNode<KvResult>;
  readonly store: KvStore;
  readonly service: KvService;
  /** Closes the API, then the node (handing leadership over). */
  stop(): Promise<void>;
}

/** Starts a member from parsed arguments. */
export async function startMember(args: MemberArgs, logger: Logger): Promise<RunningMember> {
  const storage = await FileStorage.open(args.data);
  logger.info("opened the WAL", { data: args.data, recovery: storage.recovery });
  const transport = makeTransport(args, logger);
  const store = new KvStore();
  const node = await createNode<KvResult>({
    id: args.id,
    members: args.members,
    join: args.join,
    transport,
    storage,
    stateMachine: store,
    tickMs: args.tickMs,
    logger,
  });
  const clientUrls = Object.fromEntries(Object.entries(args.clients).map(([id, a]) => [id, `http://${a}`]));
  const service = await startKvService({ node, store, listen: args.client, redirect: args.redirect, clientUrls, logger });
  logger.info("member ready", { node: args.id, transport: args.transport, peers: transport.address(), api: service.url });
  return {
    node,
    store,
    service,
    stop: async () => {
      await service.close();
      await node.close();
    },
  };
}

/** Runs a member until SIGINT or SIGTERM; resolves to the exit status. */
export async function runMember(argv: readonly string[], err: (text: string) => void): Promise<number> {
  let args: MemberArgs;
  try {
    args = parseMemberArgs(argv);
  } catch (error) {
    err(`orrery node: ${(error as Error).message}\n\n${MEMBER_USAGE}`);
    return 2;
  }
  const logger = jsonLogger({ level: args.logLevel, write: err, base: { node: args.id } });
  const member = await startMember(args, logger);
  return untilSignal(logger, () => member.stop());
}

function makeTransport(args: MemberArgs, logger: Logger): Transport {
  const options: TransportOptions = {
    id: args.id,
    clusterId: args.cluster,
    listen: args.members[args.id] ?? "127.0.0.1:0",
    peers: args.members,
    ...(args.secret === undefined ? {} : { secret: args.secret }),
    ...(args.tls === undefined ? {} : { tls: args.tls }),
    logger,
  };
  return args.transport === "tcp" ? createTcpTransport(options) : createHttpTransport(options);
}
