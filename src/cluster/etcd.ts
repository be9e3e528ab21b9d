/**
 * `EtcdMeta`: `ClusterMeta` over etcd's v3 JSON gateway (`/v3/kv/*`,
 * `/v3/lease/*`, `/v3/watch`), spoken with the platform's `fetch`.
 *
 * Why not the npm `etcd3` client: it works on Deno and Bun, but it brings
 * gRPC (`@grpc/grpc-js`, `protobufjs`) and its own reconnect and lease
 * policies for the eight calls we make. The gateway is part of every etcd
 * 3.4 server, takes the same requests as JSON (keys and values base64, int64s
 * as strings), and `fetch` with a streamed body gives the watch; measured
 * here on Deno 2.9 and Bun 1.4 against apt's etcd 3.4.23 (put, lease
 * grant/keepalive/revoke, txn create-if-absent, prefix watch). Our reconnect
 * policy (node.ts) is then ours to see and test.
 *
 * @module
 */
import { CLUSTER_ETCD_REQUEST_MS, CLUSTER_WATCH_LINE_BYTES_MAX } from "../config/mod.ts";
import type { ClusterMeta, KeyValue, Watch, WatchEvent } from "./meta.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(s: string): string {
  return encoder.encode(s).toBase64();
}

function unb64(s: string | undefined): string {
  return s === undefined ? "" : decoder.decode(Uint8Array.fromBase64(s));
}

/** The range end that makes a range request a prefix request: the prefix with its last byte + 1. */
function prefixEnd(prefix: string): string {
  const bytes = encoder.encode(prefix);
  bytes[bytes.length - 1]++;
  return bytes.toBase64();
}

interface RawKv {
  key: string;
  value?: string;
  create_revision?: string;
  lease?: string;
}

function kvOf(raw: RawKv): KeyValue {
  return {
    key: unb64(raw.key),
    value: unb64(raw.value),
    createRevision: Number(raw.create_revision ?? 0),
    lease: raw.lease ?? "0",
  };
}

/** An etcd request that failed: unreachable, timed out, or answered an error. */
export class EtcdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdError";
  }
}

/** `ClusterMeta` on an etcd server at `endpoint` (`http://127.0.0.1:2379`). */
export class EtcdMeta implements ClusterMeta {
  readonly endpoint: string;

  constructor(endpoint: string) {
    this.endpoint = endpoint.replace(/\/+$/, "");
  }

  /** The server's version, or throws `EtcdError`: the start-up reachability check. */
  async version(): Promise<string> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), CLUSTER_ETCD_REQUEST_MS);
    try {
      const res = await fetch(`${this.endpoint}/version`, { signal: abort.signal });
      const body = await res.json() as { etcdserver?: string };
      if (!res.ok || body.etcdserver === undefined) throw new Error(`answered ${res.status}`);
      return body.etcdserver;
    } catch (e) {
      throw new EtcdError(this.#why(e, abort.signal));
    } finally {
      clearTimeout(timer);
    }
  }

  async grant(ttlS: number): Promise<string> {
    const r = await this.#post("/v3/lease/grant", { TTL: ttlS }) as { ID: string };
    return r.ID;
  }

  async keepAlive(lease: string): Promise<number> {
    const r = await this.#post("/v3/lease/keepalive", { ID: lease }) as {
      result?: { TTL?: string };
    };
    return Number(r.result?.TTL ?? 0);
  }

  async revoke(lease: string): Promise<void> {
    await this.#post("/v3/lease/revoke", { ID: lease }, true);
  }

  async create(
    key: string,
    value: string,
    lease: string,
  ): Promise<{ created: boolean; kv: KeyValue }> {
    const k = b64(key);
    const r = await this.#post("/v3/kv/txn", {
      compare: [{ key: k, target: "CREATE", create_revision: "0" }],
      success: [{ request_put: { key: k, value: b64(value), lease } }, {
        request_range: { key: k },
      }],
      failure: [{ request_range: { key: k } }],
    }) as {
      succeeded?: boolean;
      responses: { response_range?: { kvs?: RawKv[] } }[];
    };
    const raw = r.responses.find((x) => x.response_range)?.response_range?.kvs?.[0];
    if (raw === undefined) throw new EtcdError(`txn on ${JSON.stringify(key)} returned no key`);
    return { created: r.succeeded === true, kv: kvOf(raw) };
  }

  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const r = await this.#post("/v3/kv/range", {
      key: b64(prefix),
      range_end: prefixEnd(prefix),
    }) as {
      header: { revision: string };
      kvs?: RawKv[];
    };
    return { kvs: (r.kvs ?? []).map(kvOf), revision: Number(r.header.revision) };
  }

  async holds(key: string, createRevision: number): Promise<boolean> {
    const r = await this.#post("/v3/kv/txn", {
      compare: [{ key: b64(key), target: "CREATE", create_revision: String(createRevision) }],
    }) as { succeeded?: boolean };
    return r.succeeded === true;
  }

  async putIf(
    key: string,
    value: string,
    guardKey: string,
    guardRevision: number,
  ): Promise<boolean> {
    const r = await this.#post("/v3/kv/txn", {
      compare: [{ key: b64(guardKey), target: "CREATE", create_revision: String(guardRevision) }],
      success: [{ request_put: { key: b64(key), value: b64(value) } }],
    }) as { succeeded?: boolean };
    return r.succeeded === true;
  }

  async put(key: string, value: string): Promise<void> {
    await this.#post("/v3/kv/put", { key: b64(key), value: b64(value) });
  }

  async delete(key: string): Promise<void> {
    await this.#post("/v3/kv/deleterange", { key: b64(key) });
  }

  async deleteIf(key: string, createRevision: number): Promise<boolean> {
    const k = b64(key);
    const r = await this.#post("/v3/kv/txn", {
      compare: [{ key: k, target: "CREATE", create_revision: String(createRevision) }],
      success: [{ request_delete_range: { key: k } }],
    }) as { succeeded?: boolean };
    return r.succeeded === true;
  }

  async watch(
    prefix: string,
    fromRevision: number,
    onEvents: (events: WatchEvent[]) => void,
    onEnd: (error: unknown) => void,
  ): Promise<Watch> {
    const abort = new AbortController();
    const body = JSON.stringify({
      create_request: {
        key: b64(prefix),
        range_end: prefixEnd(prefix),
        start_revision: String(fromRevision),
      },
    });
    let res: Response;
    const timer = setTimeout(() => abort.abort(), CLUSTER_ETCD_REQUEST_MS);
    try {
      res = await fetch(`${this.endpoint}/v3/watch`, {
        method: "POST",
        body,
        signal: abort.signal,
      });
    } catch (e) {
      throw new EtcdError(this.#why(e, abort.signal));
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok || res.body === null) {
      await res.body?.cancel();
      throw new EtcdError(`watch answered ${res.status}`);
    }
    const reader = res.body.getReader();
    let closing = false;
    const pump = (async () => {
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new EtcdError("watch stream ended");
        pending += decoder.decode(value, { stream: true });
        if (pending.length > CLUSTER_WATCH_LINE_BYTES_MAX) {
          throw new EtcdError("watch response over CLUSTER_WATCH_LINE_BYTES_MAX");
        }
        let nl: number;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line !== "") this.#watchLine(line, onEvents);
        }
      }
    })().catch((e) => {
      if (!closing) onEnd(e);
    });
    return {
      async close() {
        closing = true;
        abort.abort();
        await reader.cancel().catch(() => {});
        await pump;
      },
    };
  }

  #watchLine(line: string, onEvents: (events: WatchEvent[]) => void): void {
    const msg = JSON.parse(line) as {
      result?: { canceled?: boolean; cancel_reason?: string; events?: (RawKv & object)[] };
      error?: { message?: string };
    };
    if (msg.error !== undefined) throw new EtcdError(`watch: ${msg.error.message}`);
    const r = msg.result;
    if (r?.canceled) throw new EtcdError(`watch canceled: ${r.cancel_reason ?? "no reason given"}`);
    const raw = r?.events as { type?: string; kv: RawKv }[] | undefined;
    if (raw === undefined || raw.length === 0) return;
    onEvents(
      raw.map((e) =>
        e.type === "DELETE"
          ? { type: "delete", key: unb64(e.kv.key) }
          : { type: "put", key: unb64(e.kv.key), kv: kvOf(e.kv) }
      ),
    );
  }

  async #post(path: string, body: unknown, notFoundOk = false): Promise<unknown> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), CLUSTER_ETCD_REQUEST_MS);
    try {
      let res: Response;
      try {
        res = await fetch(`${this.endpoint}${path}`, {
          method: "POST",
          body: JSON.stringify(body),
          signal: abort.signal,
        });
      } catch (e) {
        throw new EtcdError(this.#why(e, abort.signal));
      }
      const text = await res.text();
      let parsed: { error?: string; message?: string };
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new EtcdError(`${path} answered ${res.status} without JSON`);
      }
      const error = parsed.message ?? parsed.error;
      if (!res.ok || error !== undefined) {
        if (notFoundOk && /not found/.test(String(error))) return parsed;
        throw new EtcdError(`${path} answered ${res.status}: ${error ?? "no message"}`);
      }
      return parsed;
    } finally {
      clearTimeout(timer);
    }
  }

  #why(e: unknown, signal: AbortSignal): string {
    if (signal.aborted) {
      return `cannot reach etcd at ${this.endpoint}: no answer within ${CLUSTER_ETCD_REQUEST_MS} ms`;
    }
    let err = e as { message?: string; cause?: unknown };
    for (let i = 0; i < 5 && err?.cause; i++) err = err.cause as typeof err;
    return `cannot reach etcd at ${this.endpoint}: ${(err?.message ?? String(e)).split("\n")[0]}`;
  }
}
