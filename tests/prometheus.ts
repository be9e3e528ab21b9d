/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests:
 * it throws on anything a scraper could reject or misread, and returns the
 * samples by series so tests can read values.
 *
 * Checked: metric and label name grammar; label value escapes (only `\\`,
 * `\"`, `\n`); values (`+Inf`, `-Inf`, `NaN` or a float); HELP/TYPE at most
 * once per family, before its samples; a family's samples together; sample
 * names that fit the family's type; no duplicate series; counters >= 0;
 * histogram buckets cumulative with a `+Inf` bucket equal to `_count`.
 */

/** One parsed family. */
export interface Family {
  name: string;
  type: string;
  help: string | undefined;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses exposition text; throws with the line number on the first problem. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const series = new Set<string>();
  let current: Family | undefined;
  const closed = new Set<string>();
  if (text.length > 0 && !text.endsWith("\n")) {
    throw new SyntaxError("text must end in a line feed");
  }
  const lines = text.split("\n");
  lines.pop();
  const family = (name: string, n: number): Family => {
    if (current?.name === name) return current;
    if (closed.has(name) || families.has(name)) {
      throw new SyntaxError(`line ${n}: family ${name} is not contiguous`);
    }
    if (current) closed.add(current.name);
    current = { name, type: "untyped", help: undefined, samples: [] };
    families.set(name, current);
    return current;
  };
  lines.forEach((line, i) => {
    const n = i + 1;
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = line.match(/^# (HELP|TYPE) ([^ ]+) ?(.*)$/);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name) || name.match(METRIC_NAME)![0] !== name) {
        throw new SyntaxError(`line ${n}: bad metric name ${JSON.stringify(name)}`);
      }
      const f = family(name, n);
      if (f.samples.length > 0) {
        throw new SyntaxError(`line ${n}: ${kind} after samples of ${name}`);
      }
      if (kind === "HELP") {
        if (f.help !== undefined) throw new SyntaxError(`line ${n}: second HELP for ${name}`);
        f.help = unescape(rest, false, n);
      } else {
        if (f.type !== "untyped" || !TYPES.has(rest)) {
          throw new SyntaxError(`line ${n}: bad or second TYPE ${JSON.stringify(rest)}`);
        }
        f.type = rest;
      }
      return;
    }
    const s = parseSample(line, n);
    const base = baseName(s.name, current);
    const f = family(base, n);
    checkSampleName(f, s.name, n);
    const key = s.name + JSON.stringify(Object.entries(s.labels).sort());
    if (series.has(key)) throw new SyntaxError(`line ${n}: duplicate series ${key}`);
    series.add(key);
    if (f.type === "counter" && !(s.value >= 0)) {
      throw new SyntaxError(`line ${n}: counter ${s.name} is ${s.value}`);
    }
    f.samples.push(s);
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** The value of one series, e.g. `value(fams, "relayr_queue_depth", { queue: "a" })`. */
export function value(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(s.labels);
      if (keys.length !== Object.keys(labels).length) continue;
      if (keys.every((k) => s.labels[k] === labels[k])) return s.value;
    }
  }
  return undefined;
}

function baseName(sample: string, current: Family | undefined): string {
  if (current && (current.type === "histogram" || current.type === "summary")) {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      if (sample === current.name + suffix) return current.name;
    }
  }
  return sample;
}

function checkSampleName(f: Family, name: string, n: number): void {
  if (f.type === "histogram") {
    if (![`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].includes(name)) {
      throw new SyntaxError(`line ${n}: ${name} in histogram ${f.name}`);
    }
  } else if (name !== f.name) throw new SyntaxError(`line ${n}: ${name} in family ${f.name}`);
}

function parseSample(line: string, n: number): Family["samples"][number] {
  const nm = line.match(METRIC_NAME);
  if (!nm) throw new SyntaxError(`line ${n}: no metric name in ${JSON.stringify(line)}`);
  const name = nm[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === "{") {
    pos++;
    while (line[pos] !== "}") {
      const ln = line.slice(pos).match(LABEL_NAME);
      if (!ln) throw new SyntaxError(`line ${n}: bad label name at ${pos}`);
      pos += ln[0].length;
      if (line[pos] !== "=" || line[pos + 1] !== '"') {
        throw new SyntaxError(`line ${n}: expected =" at ${pos}`);
      }
      pos += 2;
      let raw = "";
      while (line[pos] !== '"') {
        if (pos >= line.length) throw new SyntaxError(`line ${n}: unterminated label value`);
        if (line[pos] === "\\") {
          raw += line.slice(pos, pos + 2);
          pos += 2;
        } else raw += line[pos++];
      }
      pos++;
      if (ln[0] in labels) throw new SyntaxError(`line ${n}: label ${ln[0]} twice`);
      labels[ln[0]] = unescape(raw, true, n);
      if (line[pos] === ",") pos++;
      else if (line[pos] !== "}") throw new SyntaxError(`line ${n}: expected , or } at ${pos}`);
    }
    pos++;
  }
  const rest = line.slice(pos);
  const m = rest.match(/^ ([^ ]+)(?: (-?[0-9]+))?$/);
  if (!m) throw new SyntaxError(`line ${n}: bad value part ${JSON.stringify(rest)}`);
  return { name, labels, value: parseValue(m[1], n) };
}

function parseValue(s: string, n: number): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  if (!FLOAT.test(s)) throw new SyntaxError(`line ${n}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

function unescape(s: string, quotes: boolean, n: number): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== "\\") {
      if (quotes && s[i] === '"') throw new SyntaxError(`line ${n}: unescaped quote`);
      out += s[i];
      continue;
    }
    const c = s[++i];
    if (c === "\\") out += "\\";
    else if (c === "n") out += "\n";
    else if (c === '"' && quotes) out += '"';
    else throw new SyntaxError(`line ${n}: bad escape \\${c ?? ""}`);
  }
  return out;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name.endsWith("_bucket")) {
      if (le === undefined) throw new SyntaxError(`${f.name}: bucket without le`);
      g.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name.endsWith("_count")) g.count = s.value;
    else g.sum = s.value;
  }
  for (const g of groups.values()) {
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new SyntaxError(`${f.name}: no +Inf bucket last`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (g.buckets[i][0] <= g.buckets[i - 1][0] || g.buckets[i][1] < g.buckets[i - 1][1]) {
        throw new SyntaxError(`${f.name}: buckets not increasing and cumulative`);
      }
    }
    if (g.count !== last[1] || g.sum === undefined) {
      throw new SyntaxError(`${f.name}: _count must equal the +Inf bucket, and _sum be present`);
    }
  }
}
