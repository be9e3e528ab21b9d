/**
 * A grpc-js client of relayr.v1.Broker for tests and the bench: generated at
 * run time from the same descriptor the server serves (as a Go or Python
 * client would be from docs/relayr.proto), with promise wrappers for the
 * unary calls and a reader for stream responses.
 */
import * as grpc from "@grpc/grpc-js";
import { brokerServiceDefinition, ERROR_CODE_KEY, type MessageObject } from "../src/grpc/mod.ts";

/** A connected client; `raw` is the generated grpc-js client. */
export class GrpcClient {
  // deno-lint-ignore no-explicit-any
  readonly raw: any;

  constructor(
    port: number,
    options: grpc.ClientOptions = {},
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    const Ctor = grpc.makeClientConstructor(brokerServiceDefinition(), "relayr.v1.Broker");
    // "localhost": the name the test certificates carry (the address is 127.0.0.1 either way).
    this.raw = new Ctor(`localhost:${port}`, credentials, options);
  }

  /** A unary call as a promise; rejects with the grpc ServiceError. */
  unary<T>(
    method: string,
    req: unknown,
    o: { metadata?: grpc.Metadata; deadline?: number } = {},
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      const options: grpc.CallOptions = o.deadline === undefined ? {} : { deadline: o.deadline };
      this.raw[method](
        req,
        o.metadata ?? new grpc.Metadata(),
        options,
        (err: grpc.ServiceError | null, res: T) => err ? reject(err) : resolve(res),
      );
    });
  }

  /** Closes the channel. */
  close(): void {
    this.raw.close();
  }
}

/** Call metadata from name/value pairs (credentials: `authorization`, or `user` and `pass`). */
export function md(pairs: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
}

/** The broker error code in a failed call's trailers. */
export function errorCode(e: unknown): string | undefined {
  const md = (e as grpc.ServiceError).metadata;
  const v = md?.get(ERROR_CODE_KEY)[0];
  return typeof v === "string" ? v : undefined;
}

/** Reads a stream's responses into a queue, with a bounded wait for the next. */
export class StreamReader<T> {
  #items: T[] = [];
  #waiters: (() => void)[] = [];
  error: grpc.ServiceError | undefined;
  ended = false;

  // deno-lint-ignore no-explicit-any
  constructor(readonly call: any) {
    call.on("data", (d: T) => {
      this.#items.push(d);
      this.#wake();
    });
    call.on("error", (e: grpc.ServiceError) => {
      this.error = e;
      this.#wake();
    });
    call.on("end", () => {
      this.ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next response; throws on timeout or when the stream ended first. */
  async next(timeoutMs = 3000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.#items.length === 0) {
      if (this.error !== undefined) throw this.error;
      if (this.ended) throw new Error("the stream ended");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
    return this.#items.shift()!;
  }

  /** Waits until the stream ends (with an error or not), bounded. */
  async done(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.error === undefined && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the stream did not end within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, left);
      });
      clearTimeout(timer);
    }
  }
}

/** A proto `Message` as the client decodes it (the shape the server builds for Request replies). */
export type GrpcMessage = MessageObject;

/** A SubscribeResponse as the client decodes it. */
export interface SubscribeResponse {
  messages: GrpcMessage[];
  sub_id: string;
  error: { code: string; message: string } | null;
}

/** Opens a Subscribe stream and waits for its `sub_id`. */
export async function subscribe(
  c: GrpcClient,
  open: Record<string, unknown>,
  metadata = new grpc.Metadata(),
): Promise<
  {
    call: grpc.ClientDuplexStream<unknown, SubscribeResponse>;
    r: StreamReader<SubscribeResponse>;
    subId: string;
  }
> {
  const call = c.raw.Subscribe(metadata);
  const r = new StreamReader<SubscribeResponse>(call);
  call.write({ open });
  const first = await r.next();
  return { call, r, subId: first.sub_id };
}

/** Reads messages off a Subscribe stream until `n` have come. */
export async function takeMessages(
  r: StreamReader<SubscribeResponse>,
  n: number,
  timeoutMs = 5000,
): Promise<GrpcMessage[]> {
  const out: GrpcMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) out.push(...(await r.next(Math.max(1, deadline - Date.now()))).messages);
  return out;
}
