/**
 * CPU profiles of the Relayr server during a run (`--profile`): the server
 * starts with `--inspect`, and the V8 sampling profiler is driven over the
 * inspector's WebSocket (Chrome DevTools Protocol). Each run leaves a
 * `.cpuprofile` (open it in Chrome DevTools or speedscope) and a summary of
 * the functions with the most self time.
 *
 * @module
 */

/** Microseconds between samples. */
const SAMPLING_INTERVAL_US = 200;

/** A V8 CPU profile as CDP returns it. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One line of the summary. */
export interface Hotspot {
  fn: string;
  where: string;
  /** Share of the samples, 0..1. */
  self: number;
}

/** A Chrome DevTools Protocol session with one process's inspector (its first target). */
export class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, (result: unknown) => void>();

  private constructor(ws: WebSocket, onEvent: (method: string, params: unknown) => void) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data as string);
      if (m.id === undefined) return onEvent(m.method, m.params);
      this.#pending.get(m.id)?.(m.result ?? { error: m.error });
      this.#pending.delete(m.id);
    };
  }

  /** Attaches to the inspector on `port`; `onEvent` hears its notifications. */
  static async attach(
    port: number,
    onEvent: (method: string, params: unknown) => void = () => {},
  ): Promise<Cdp> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const ws = new WebSocket(targets[0].webSocketDebuggerUrl as string);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("inspector WebSocket failed"));
    });
    return new Cdp(ws, onEvent);
  }

  /** Calls `method`; resolves with its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve) => this.#pending.set(id, resolve));
  }

  /** Detaches. */
  close(): void {
    this.#ws.close();
  }
}

/** A connection to one process's inspector. */
export class Profiler {
  #cdp: Cdp;

  private constructor(cdp: Cdp) {
    this.#cdp = cdp;
  }

  /** Attaches to the inspector on `port` and enables the profiler. */
  static async attach(port: number): Promise<Profiler> {
    const cdp = await Cdp.attach(port);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
    return new Profiler(cdp);
  }

  /** Starts sampling. */
  async start(): Promise<void> {
    await this.#cdp.send("Profiler.start");
  }

  /** Stops sampling and returns the profile. */
  async stop(): Promise<CpuProfile> {
    const r = await this.#cdp.send("Profiler.stop") as { profile: CpuProfile };
    return r.profile;
  }

  /** Detaches. */
  close(): void {
    this.#cdp.close();
  }
}

/** The functions with the most self time; idle and GC are listed as V8 names them. */
export function hotspots(profile: CpuProfile, top: number): Hotspot[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  for (const id of profile.samples) {
    const f = byId.get(id)!.callFrame;
    const file = f.url.replace(/^.*\/(src|node_modules|ext)\//, "$1/");
    const key = `${f.functionName || "(anonymous)"}\t${file}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length || 1;
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, n]) => {
    const [fn, where] = key.split("\t");
    return { fn, where, self: n / total };
  });
}
