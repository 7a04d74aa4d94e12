/**
 * What the example processes' command lines share (`orrery node`, `orrery member`,
 * `orrery worker`): the connection flags (transport, cluster id, secret, TLS, log level), list and
 * number parsing, and running until a signal.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../lib/errors.ts";
import type { Logger, LogLevel } from "../lib/logger.ts";
import { splitHostPort } from "./kv/service.ts";

/** TLS files as read from the command line. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

/** The connection flags every example process takes, for `parseArgs`'s `options`. */
export const CONNECTION_OPTIONS = {
  transport: { type: "string", default: "tcp" },
  cluster: { type: "string", default: "orrery" },
  "secret-file": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  "log-level": { type: "string", default: "info" },
} as const;

/** The parsed connection flags. */
export interface ConnectionArgs {
  readonly transport: "tcp" | "http";
  readonly cluster: string;
  readonly secret?: string;
  readonly tls?: TlsFiles;
  readonly logLevel: LogLevel;
}

/** Checks and reads the connection flags (the secret and TLS files are read here). @throws ConfigError */
export function connectionArgs(values: {
  readonly transport?: string | undefined;
  readonly cluster?: string | undefined;
  readonly "secret-file"?: string | undefined;
  readonly "tls-cert"?: string | undefined;
  readonly "tls-key"?: string | undefined;
  readonly "tls-ca"?: string | undefined;
  readonly "log-level"?: string | undefined;
}): ConnectionArgs {
  const transport = values.transport ?? "tcp";
  if (transport !== "tcp" && transport !== "http") throw new ConfigError("--transport", "is tcp or http");
  const secretFile = values["secret-file"];
  return {
    transport,
    cluster: values.cluster ?? "orrery",
    ...(secretFile === undefined ? {} : { secret: readFileSync(secretFile, "utf8").trim() }),
    ...tlsOf(values["tls-cert"], values["tls-key"], values["tls-ca"]),
    logLevel: logLevel(values["log-level"] ?? "info"),
  };
}

/** `value`, or a ConfigError naming the missing option. */
export function required(value: string | undefined, name: string): string {
  if (value === undefined || value.length === 0) throw new ConfigError(name, "is required");
  return value;
}

/** Parses `ID=HOST:PORT,...`. @throws ConfigError naming the option */
export function parseList(list: string, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list.split(",")) {
    const eq = item.indexOf("=");
    const id = item.slice(0, eq);
    const address = item.slice(eq + 1);
    if (eq <= 0) throw new ConfigError(name, `"${item}" is not ID=HOST:PORT`);
    try {
      splitHostPort(address);
    } catch {
      throw new ConfigError(name, `"${address}" is not HOST:PORT`);
    }
    out[id] = address;
  }
  return out;
}

/** The member's host with its port + 1000 (where its HTTP API listens unless told otherwise). */
export function defaultClient(peerAddress: string | undefined): string {
  if (peerAddress === undefined) return "127.0.0.1:0";
  const [host, port] = splitHostPort(peerAddress);
  return `${host.includes(":") ? `[${host}]` : host}:${port + 1000}`;
}

/** Reads the TLS files named on the command line. @throws ConfigError when only one of cert and key is given */
export function tlsOf(cert?: string, key?: string, ca?: string): { tls?: TlsFiles } {
  if (cert === undefined && key === undefined) return {};
  if (cert === undefined || key === undefined) throw new ConfigError("--tls-cert", "and --tls-key go together");
  return {
    tls: {
      cert: readFileSync(cert, "utf8"),
      key: readFileSync(key, "utf8"),
      ...(ca === undefined ? {} : { ca: readFileSync(ca, "utf8") }),
    },
  };
}

/** Parses a positive integer option. @throws ConfigError */
export function positiveInteger(text: string, name: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(name, "is a positive integer");
  return value;
}

/** Parses `--log-level`. @throws ConfigError */
export function logLevel(text: string): LogLevel {
  const levels = ["debug", "info", "warn", "error", "silent"];
  if (!levels.includes(text)) throw new ConfigError("--log-level", levels.join("|"));
  return text as LogLevel;
}

/** Resolves with 0 once `stop` completes after SIGINT or SIGTERM (1 if it failed); a second signal exits at once. */
export function untilSignal(logger: Logger, stop: () => Promise<void>): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(130);
      stopping = true;
      logger.info("shutting down", { signal });
      stop().then(
        () => resolve(0),
        (error: unknown) => {
          logger.error("shutdown failed", { error });
          resolve(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
