/**
 * The logger the host and the transports write to: four levels, a message and structured fields.
 * Pass your own (pino, winston and console all fit with a one-line adapter), {@link jsonLogger}
 * for JSON lines, or {@link silentLogger}.
 */

/** Structured context for a log line: member ids, peers, error codes, counts. */
export type LogFields = Readonly<Record<string, unknown>>;

/** A pluggable logger. Methods must not throw. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** Log levels, from the most verbose. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
  silent: 4,
};

/** A logger that drops everything. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

/** Options for {@link jsonLogger}. */
export interface JsonLoggerOptions {
  /**
   * The least severe level written.
   * @defaultValue "info"
   */
  readonly level?: LogLevel;
  /** Where a finished line (with its newline) goes. */
  readonly write: (line: string) => void;
  /** Fields added to every line, e.g. `{ node: "n1" }`. */
  readonly base?: LogFields;
  /** The time stamp of a line; the default is the wall clock in ISO 8601. */
  readonly now?: () => string;
}

/**
 * A logger that writes one JSON object per line: `{"time","level","msg",...fields}`. Errors in
 * fields are written as `{name, code, message}`; values that cannot be serialized as strings.
 */
export function jsonLogger(options: JsonLoggerOptions): Logger {
  const threshold = LEVEL_RANK[options.level ?? "info"];
  const now = options.now ?? (() => new Date().toISOString());
  const base = options.base ?? {};
  const write = (level: Exclude<LogLevel, "silent">, message: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < threshold) return;
    const record: Record<string, unknown> = { time: now(), level, msg: message, ...base };
    for (const [key, value] of Object.entries(fields ?? {})) record[key] = plain(value);
    let line: string;
    try {
      line = JSON.stringify(record);
    } catch {
      line = JSON.stringify({ time: record.time, level, msg: message, unserializable: true });
    }
    options.write(`${line}\n`);
  };
  return {
    debug: (message, fields) => write("debug", message, fields),
    info: (message, fields) => write("info", message, fields),
    warn: (message, fields) => write("warn", message, fields),
    error: (message, fields) => write("error", message, fields),
  };
}

/** Adds `fields` to every line written through `logger`. */
export function childLogger(logger: Logger, fields: LogFields): Logger {
  return {
    debug: (message, more) => logger.debug(message, { ...fields, ...more }),
    info: (message, more) => logger.info(message, { ...fields, ...more }),
    warn: (message, more) => logger.warn(message, { ...fields, ...more }),
    error: (message, more) => logger.error(message, { ...fields, ...more }),
  };
}

function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }) };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}
