/**
 * The live heap of a Deno child started with `--inspect`, driven over the
 * inspector's WebSocket (Chrome DevTools Protocol): `bench:conns --heap`
 * forces full collections, reads `Deno.memoryUsage()` inside the child and
 * diffs two heap snapshots by object kind and retainer, so that the heap one
 * idle connection costs is a figure without garbage in it, and each of its
 * parts has a name.
 *
 * @module
 */
import { Cdp } from "./profile.ts";

/** One kind of heap object: `type:name <- owner.edge`, the first retainer naming the holder. */
export interface HeapKind {
  key: string;
  count: number;
  bytes: number;
}

/** The node and edge tables of a `.heapsnapshot`, as far as they are read here. */
interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[]];
      edge_fields: string[];
      edge_types: [string[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** A connection to one process's inspector, for its heap. */
export class Inspector {
  #cdp: Cdp;
  /** The chunks of the snapshot being taken, as the inspector sends them. */
  #chunks: string[];

  private constructor(cdp: Cdp, chunks: string[]) {
    this.#cdp = cdp;
    this.#chunks = chunks;
  }

  /** Attaches to the inspector on `port`. */
  static async attach(port: number): Promise<Inspector> {
    const chunks: string[] = [];
    const cdp = await Cdp.attach(port, (method, params) => {
      if (method === "HeapProfiler.addHeapSnapshotChunk") {
        chunks.push((params as { chunk: string }).chunk);
      }
    });
    await cdp.send("HeapProfiler.enable");
    await cdp.send("Runtime.enable");
    return new Inspector(cdp, chunks);
  }

  /** Two full collections (the second takes what the first's finalizers freed). */
  async collect(): Promise<void> {
    await this.#cdp.send("HeapProfiler.collectGarbage");
    await this.#cdp.send("HeapProfiler.collectGarbage");
  }

  /** `Deno.memoryUsage()` of the child, after `collect()`. */
  async memory(): Promise<{ rss: number; heapUsed: number; external: number }> {
    await this.collect();
    const r = await this.#cdp.send("Runtime.evaluate", {
      expression: "JSON.stringify(Deno.memoryUsage())",
    }) as { result: { value: string } };
    return JSON.parse(r.result.value);
  }

  /** The live heap by kind of object (collected first). */
  async kinds(): Promise<Map<string, HeapKind>> {
    this.#chunks.length = 0;
    await this.collect();
    await this.#cdp.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    const s = JSON.parse(this.#chunks.join("")) as Snapshot;
    this.#chunks.length = 0;
    return kindsOf(s);
  }

  /** Detaches. */
  close(): void {
    this.#cdp.close();
  }
}

/** Groups a snapshot's nodes by type, name and first strong retainer (owner and edge). */
function kindsOf(s: Snapshot): Map<string, HeapKind> {
  const meta = s.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const iType = meta.node_fields.indexOf("type");
  const iName = meta.node_fields.indexOf("name");
  const iSize = meta.node_fields.indexOf("self_size");
  const iEdges = meta.node_fields.indexOf("edge_count");
  const label = (i: number) => `${nodeTypes[s.nodes[i + iType]]}:${s.strings[s.nodes[i + iName]]}`;
  const owner = new Map<number, string>();
  for (let i = 0, e = 0; i < s.nodes.length; i += nf) {
    for (let k = 0; k < s.nodes[i + iEdges]; k++, e += ef) {
      const type = edgeTypes[s.edges[e]];
      if (type === "weak" || type === "shortcut") continue;
      const to = s.edges[e + 2];
      if (owner.has(to)) continue;
      const edge = type === "element" || type === "hidden"
        ? `[${type}]`
        : s.strings[s.edges[e + 1]];
      owner.set(to, `${label(i).slice(0, 40)}.${edge}`);
    }
  }
  const kinds = new Map<string, HeapKind>();
  for (let i = 0; i < s.nodes.length; i += nf) {
    const key = `${label(i).slice(0, 40)} <- ${owner.get(i) ?? "(root)"}`;
    const k = kinds.get(key) ?? { key, count: 0, bytes: 0 };
    k.count++;
    k.bytes += s.nodes[i + iSize];
    kinds.set(key, k);
  }
  return kinds;
}

/**
 * What `after` holds beyond `before`, per unit (`n` connections), largest
 * first; kinds under `minBytes` per unit are left out.
 */
export function perUnit(
  before: Map<string, HeapKind>,
  after: Map<string, HeapKind>,
  n: number,
  minBytes = 8,
): HeapKind[] {
  const out: HeapKind[] = [];
  for (const [key, a] of after) {
    const b = before.get(key);
    const bytes = (a.bytes - (b?.bytes ?? 0)) / n;
    if (bytes >= minBytes) out.push({ key, count: (a.count - (b?.count ?? 0)) / n, bytes });
  }
  return out.sort((x, y) => y.bytes - x.bytes);
}
