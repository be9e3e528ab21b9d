/**
 * The gate every gRPC call passes: it is counted by method, authenticated
 * (auth.ts), and a refusal or a throw becomes its status (errors.ts),
 * counted by code and, when it is a bug, logged. Streams are also admitted
 * against the listener's stream limit before they start.
 *
 * @module
 */
import type {
  handleBidiStreamingCall,
  Metadata,
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
} from "@grpc/grpc-js";
import { authenticate, certSubjectOf, type Principal } from "./auth.ts";
import { codeOf, type GrpcError, toGrpcError } from "./errors.ts";
import { GRPC_METHODS, type GrpcMethod, type GrpcOptions } from "./front.ts";

/** A unary handler as grpc-js takes it. */
export type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void;

/** A bidirectional stream handler as grpc-js takes it. */
export type Bidi = handleBidiStreamingCall<unknown, unknown>;

/** What authentication reads of a call, unary or stream. */
type CallInfo = { metadata: Metadata; getPeer(): string; getAuthContext(): object };

/** Counts, authenticates and maps the failures of the listener's calls. */
export class CallGate {
  /** Calls started, by method. */
  readonly calls: Record<GrpcMethod, number> = Object.fromEntries(
    GRPC_METHODS.map((m) => [m, 0]),
  ) as Record<GrpcMethod, number>;
  /** Failed calls and refused stream publishes, by broker error code. */
  readonly errors: Record<string, number> = {};
  #options: GrpcOptions;
  /** Throws when the listener takes no more streams (stopping, or at its limit). */
  #admit: () => void;

  constructor(options: GrpcOptions, admit: () => void) {
    this.#options = options;
    this.#admit = admit;
  }

  /** A unary handler: counts the call, authenticates it, maps a throw to its status. */
  unary<Req, Res>(
    method: GrpcMethod,
    handle: (p: Principal, req: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
  ): Unary<Req, Res> {
    const run = (p: Principal, call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      let out: Res | Promise<Res>;
      try {
        out = handle(p, call.request, call);
      } catch (e) {
        return cb(this.fail(method, e));
      }
      if (out instanceof Promise) out.then((r) => cb(null, r), (e) => cb(this.fail(method, e)));
      else cb(null, out);
    };
    return (call, cb) => {
      this.calls[method]++;
      const p = this.#authenticate(call);
      if (!(p instanceof Promise)) return run(p, call, cb);
      p.then((p) => run(p, call, cb), (e) => cb(this.fail(method, e)));
    };
  }

  /**
   * A stream handler: counts the call, then runs `start` with the stream's
   * principal once authenticated and admitted; until then the stream is
   * paused (its requests wait in grpc-js, bounded by HTTP/2 flow control). A
   * refusal ends the stream with its status.
   */
  stream(
    method: GrpcMethod,
    start: (call: ServerDuplexStream<unknown, unknown>, p: Principal) => void,
  ): Bidi {
    return ((call: ServerDuplexStream<unknown, unknown>) => {
      this.calls[method]++;
      const go = (p: Principal) => {
        if (call.cancelled || call.destroyed) return;
        try {
          this.#admit();
        } catch (e) {
          call.emit("error", this.fail(method, e));
          return;
        }
        start(call, p);
      };
      const p = this.#authenticate(call);
      if (!(p instanceof Promise)) return go(p);
      call.pause();
      p.then((p) => {
        go(p);
        call.resume();
      }, (e) => {
        if (!call.cancelled && !call.destroyed) call.emit("error", this.fail(method, e));
      });
    }) as Bidi;
  }

  /** Counts and logs a failed call; its status for grpc-js. */
  fail(method: GrpcMethod, e: unknown): GrpcError {
    const code = codeOf(e) ?? "INTERNAL";
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    if (code === "PERMISSION_DENIED" && this.#options.authz) {
      this.#options.authz.permission_denied++;
    }
    if (code === "INTERNAL") {
      this.#options.log?.("error", "gRPC {method} failed: {err}", {
        method,
        err: (e as Error)?.stack ?? String(e),
      });
    }
    return toGrpcError(e);
  }

  /** The call's principal, from its metadata and (mTLS only) its verified client certificate. */
  #authenticate(call: CallInfo): Principal | Promise<Principal> {
    const subject = this.#options.tls?.ca === undefined
      ? undefined
      : certSubjectOf(call.getAuthContext());
    return authenticate(this.#options.auth, call.metadata, call.getPeer(), subject);
  }
}
