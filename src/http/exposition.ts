/**
 * The Prometheus text exposition format (version 0.0.4), written by hand:
 * `# HELP` and `# TYPE` once per family, then its samples, all together.
 *
 * Escaping is the part that is easy to get wrong: in `# HELP` text a
 * backslash and a line feed are escaped (`\\`, `\n`); in label values a
 * double quote is escaped too (`\"`). Names are checked against the format's
 * grammar and a bad one is a programming error, so it throws.
 *
 * @module
 */

/** The metric types this writer emits. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Label names to values. */
export type Labels = Readonly<Record<string, string>>;

/** Labels rendered once (`labelSet()`), for series that repeat them across many families. */
export class LabelSet {
  /** The rendered `{k="v",...}`. */
  readonly text: string;
  constructor(labels: Labels) {
    this.text = formatLabels(labels);
  }
}

/** One sample: labels (maybe none) and a value. */
export type Sample = readonly [labels: Labels | LabelSet | undefined, value: number];

/** Content type of the exposition, for the HTTP response. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes `# HELP` text. */
export function escapeHelp(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** Escapes a label value. */
export function escapeLabelValue(s: string): string {
  // Most values (destination names, reasons) need nothing: test once, copy never.
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** A sample value as the format spells it (`+Inf`, `-Inf`, `NaN`). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Label names already checked (a handful, used for every sample). */
const checkedLabelNames = new Set<string>();

function formatLabels(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  let out = "";
  for (const k in labels) {
    if (!checkedLabelNames.has(k)) {
      if (!LABEL_NAME.test(k) || k.startsWith("__")) {
        throw new TypeError(`Invalid label name ${JSON.stringify(k)}`);
      }
      checkedLabelNames.add(k);
    }
    out += `${out === "" ? "{" : ","}${k}="${escapeLabelValue(labels[k])}"`;
  }
  return out === "" ? "" : out + "}";
}

/** Histogram data: cumulative counts per upper bound (without +Inf), sum and count. */
export interface HistogramData {
  buckets: readonly { le: number; count: number }[];
  sum: number;
  count: number;
}

/** Builds one exposition; every family is written whole by one call. */
export class Exposition {
  #lines: string[] = [];
  #names = new Set<string>();

  /** Writes a counter or gauge family with its samples. */
  family(name: string, type: "counter" | "gauge", help: string, samples: Iterable<Sample>): void {
    this.#head(name, type, help);
    for (const [labels, value] of samples) {
      const l = labels instanceof LabelSet ? labels.text : formatLabels(labels);
      this.#lines.push(`${name}${l} ${formatValue(value)}`);
    }
  }

  /** Writes a single-sample family without labels. */
  single(name: string, type: "counter" | "gauge", help: string, value: number): void {
    this.family(name, type, help, [[undefined, value]]);
  }

  /** Writes a histogram family (one series). */
  histogram(name: string, help: string, data: HistogramData, labels?: Labels): void {
    this.#head(name, "histogram", help);
    for (const b of data.buckets) {
      const l = formatLabels({ ...labels, le: formatValue(b.le) });
      this.#lines.push(`${name}_bucket${l} ${formatValue(b.count)}`);
    }
    const inf = formatLabels({ ...labels, le: "+Inf" });
    this.#lines.push(`${name}_bucket${inf} ${formatValue(data.count)}`);
    this.#lines.push(`${name}_sum${formatLabels(labels)} ${formatValue(data.sum)}`);
    this.#lines.push(`${name}_count${formatLabels(labels)} ${formatValue(data.count)}`);
  }

  /** The exposition text, ending in a line feed. */
  text(): string {
    return this.#lines.length === 0 ? "" : this.#lines.join("\n") + "\n";
  }

  #head(name: string, type: MetricType, help: string): void {
    if (!METRIC_NAME.test(name)) throw new TypeError(`Invalid metric name ${JSON.stringify(name)}`);
    if (this.#names.has(name)) throw new TypeError(`Metric family ${name} written twice`);
    this.#names.add(name);
    this.#lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  }
}
