/**
 * A small Prometheus registry: counters, gauges and histograms with fixed buckets, rendered in the
 * text exposition format (version 0.0.4). Enough for a member's `/metrics`; no dependency.
 */

/** Label values by label name; rendered sorted by name. */
export type Labels = Readonly<Record<string, string>>;

/** The most label combinations one metric keeps, so that a bug cannot grow memory without limit. */
export const SERIES_PER_METRIC_MAX = 256;

/** Default histogram buckets for latencies in seconds: 50 µs to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

type Kind = "counter" | "gauge" | "histogram";

interface Series {
  readonly labels: Labels;
  value: number;
  /** Histogram only: counts per bucket (not cumulative) and the sum. */
  buckets?: number[];
  sum?: number;
}

/** One named metric with its series. */
class Metric {
  readonly series = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly bucketBounds: readonly number[] = [],
  ) {}

  at(labels: Labels): Series | null {
    const key = labelKey(labels);
    let series = this.series.get(key);
    if (series === undefined) {
      if (this.series.size >= SERIES_PER_METRIC_MAX) return null;
      series = { labels, value: 0 };
      if (this.kind === "histogram") {
        series.buckets = this.bucketBounds.map(() => 0);
        series.sum = 0;
      }
      this.series.set(key, series);
    }
    return series;
  }
}

/** A set of metrics rendered together. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();

  /** `constLabels` are added to every series, e.g. `{ node: "n1" }`. */
  constructor(private readonly constLabels: Labels = {}) {}

  /** Declares a counter (only grows). Declaring the same name twice returns the same metric. */
  counter(name: string, help: string): Counter {
    const metric = this.declare(name, help, "counter");
    // The unlabeled series is looked up once: counters are bumped on the hot path.
    const plain = metric.at({}) as Series;
    return {
      inc: (by = 1, labels?: Labels) => {
        const series = labels === undefined ? plain : metric.at(labels);
        if (series !== null) series.value += by;
      },
      set: (value, labels = {}) => {
        const series = metric.at(labels);
        if (series !== null) series.value = value;
      },
    };
  }

  /** Declares a gauge (any value). */
  gauge(name: string, help: string): Gauge {
    const metric = this.declare(name, help, "gauge");
    return {
      set: (value, labels = {}) => {
        const series = metric.at(labels);
        if (series !== null) series.value = value;
      },
    };
  }

  /** Declares a histogram with `buckets` (upper bounds, ascending). */
  histogram(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS_SECONDS): Histogram {
    const metric = this.declare(name, help, "histogram", buckets);
    return {
      observe: (value, labels = {}) => {
        const series = metric.at(labels);
        if (series === null) return;
        series.value += 1;
        series.sum = (series.sum ?? 0) + value;
        const i = buckets.findIndex((bound) => value <= bound);
        if (i >= 0 && series.buckets !== undefined) series.buckets[i] = (series.buckets[i] ?? 0) + 1;
      },
    };
  }

  /** The text exposition of every metric, sorted by name. */
  render(): string {
    const lines: string[] = [];
    for (const name of [...this.metrics.keys()].sort()) {
      const metric = this.metrics.get(name) as Metric;
      lines.push(`# HELP ${name} ${metric.help}`, `# TYPE ${name} ${metric.kind}`);
      for (const key of [...metric.series.keys()].sort()) {
        const series = metric.series.get(key) as Series;
        const labeled = { ...series, labels: { ...this.constLabels, ...series.labels } };
        if (metric.kind === "histogram") lines.push(...renderHistogram(metric, labeled));
        else lines.push(`${name}${renderLabels(labeled.labels)} ${formatValue(series.value)}`);
      }
    }
    return `${lines.join("\n")}\n`;
  }

  private declare(name: string, help: string, kind: Kind, buckets?: readonly number[]): Metric {
    const existing = this.metrics.get(name);
    if (existing !== undefined) return existing;
    const metric = new Metric(name, help, kind, buckets);
    this.metrics.set(name, metric);
    return metric;
  }
}

/** A counter: `inc` adds; `set` mirrors a count kept elsewhere (it must only grow). */
export interface Counter {
  inc(by?: number, labels?: Labels): void;
  set(value: number, labels?: Labels): void;
}

/** A gauge. */
export interface Gauge {
  set(value: number, labels?: Labels): void;
}

/** A histogram. */
export interface Histogram {
  observe(value: number, labels?: Labels): void;
}

function renderHistogram(metric: Metric, series: Series): string[] {
  const lines: string[] = [];
  let cumulative = 0;
  metric.bucketBounds.forEach((bound, i) => {
    cumulative += series.buckets?.[i] ?? 0;
    lines.push(`${metric.name}_bucket${renderLabels({ ...series.labels, le: formatValue(bound) })} ${cumulative}`);
  });
  lines.push(`${metric.name}_bucket${renderLabels({ ...series.labels, le: "+Inf" })} ${series.value}`);
  lines.push(`${metric.name}_sum${renderLabels(series.labels)} ${formatValue(series.sum ?? 0)}`);
  lines.push(`${metric.name}_count${renderLabels(series.labels)} ${series.value}`);
  return lines;
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join("\u0000");
}

function renderLabels(labels: Labels): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return "";
  const parts = names.map((k) => `${k}="${escapeLabel(labels[k] ?? "")}"`);
  return `{${parts.join(",")}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
