/**
 * The gRPC front end's two auth questions, asked of every call in one place:
 * who is calling (`authenticate`, from the call's metadata) and may they use
 * this destination for this action (`authorize`). src/auth/ holds only the
 * users file's shape so far (no authenticator has landed): until it does,
 * every caller is anonymous and allowed, as on TCP. Wiring it in changes
 * these two functions only; docs/GRPC.md says which metadata they read.
 *
 * @module
 */
import type { Metadata } from "@grpc/grpc-js";

/** Who a call runs as. */
export interface Principal {
  /** The user name; undefined when anonymous. */
  readonly user: string | undefined;
}

/** What a caller wants to do with a destination (the permission kinds of src/auth/). */
export type Action = "publish" | "subscribe" | "consume" | "admin";

const ANONYMOUS: Principal = { user: undefined };

/** The credential a call presents: a bearer token, or a user and password. */
export type Credential =
  | { kind: "none" }
  | { kind: "token"; token: string }
  | { kind: "password"; user: string; pass: string };

/** Reads the credential from metadata: `authorization: Bearer <token>`, or `user` and `pass`. */
export function credentialOf(md: Metadata): Credential {
  const auth = md.get("authorization")[0];
  if (typeof auth === "string" && /^Bearer /i.test(auth)) {
    return { kind: "token", token: auth.slice(7).trim() };
  }
  const user = md.get("user")[0];
  const pass = md.get("pass")[0];
  if (typeof user === "string" && typeof pass === "string") return { kind: "password", user, pass };
  return { kind: "none" };
}

/**
 * Authenticates a call; throws `GrpcRefusal` (AUTH_REQUIRED, AUTH_FAILED)
 * when the server requires auth and the credential fails. No authenticator
 * exists yet, so every call is anonymous, credential or not.
 */
export function authenticate(md: Metadata): Principal {
  credentialOf(md); // read (and so validated for shape) where the authenticator will check it
  return ANONYMOUS;
}

/**
 * Whether `p` may do `action` on `dest`; throws `GrpcRefusal`
 * (PERMISSION_DENIED) when not. Allows everything until src/auth/ has rules.
 */
export function authorize(_p: Principal, _action: Action, _dest: string): void {}
