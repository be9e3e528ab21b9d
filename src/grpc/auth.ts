/**
 * The gRPC front end's two auth questions, asked of every call in one place:
 * who is calling (`authenticate`, from the call's metadata, by the broker's
 * `Authenticator`, the one TCP's CONNECT uses) and may they use this
 * destination for this action (`authorize`, from the user's permission
 * rules). With authentication off (no `--auth-token`, no users file) every
 * call is anonymous and allowed, as on TCP.
 *
 * @module
 */
import type { Metadata } from "@grpc/grpc-js";
import type {
  Authenticator,
  Credentials,
  PermissionRules,
  Principal as AuthPrincipal,
  UserPermissions,
} from "../auth/mod.ts";
import { matches } from "../protocol/mod.ts";
import { GrpcRefusal } from "./errors.ts";

/** Who a call runs as. */
export interface Principal {
  /** The user name (`$token` for the token's holder); undefined when authentication is off. */
  readonly user: string | undefined;
  /** The user's permission rules; undefined: everything is allowed (auth off, or the token). */
  readonly permissions: UserPermissions | undefined;
  /** The Authenticator's principal (auth on), which a reload reviews. */
  readonly of: AuthPrincipal | undefined;
}

/** What a caller wants to do with a destination (the permission kinds of src/auth/). */
export type Action = "publish" | "subscribe" | "consume" | "admin";

const ANONYMOUS: Principal = Object.freeze({
  user: undefined,
  permissions: undefined,
  of: undefined,
});

/** Ours for the Authenticator's principal. */
export function principalOf(p: AuthPrincipal): Principal {
  return { user: p.user, permissions: p.entry?.permissions, of: p };
}

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
 * Authenticates a call: anonymous at once when authentication is off, else
 * the Authenticator's verdict (failed logins slowed per address, as on TCP).
 * Rejects with `GrpcRefusal` AUTH_REQUIRED (no credential) or AUTH_FAILED;
 * the error never repeats the credential.
 */
export function authenticate(
  auth: Authenticator | undefined,
  md: Metadata,
  peer: string,
): Principal | Promise<Principal> {
  if (auth === undefined) return ANONYMOUS;
  const c = credentialOf(md);
  if (c.kind === "none") {
    return Promise.reject(
      new GrpcRefusal(
        "AUTH_REQUIRED",
        "authenticate with metadata authorization: Bearer <token>, or user and pass",
      ),
    );
  }
  const creds: Credentials = c.kind === "token"
    ? { auth_token: c.token }
    : { user: c.user, pass: c.pass };
  return auth.authenticate(creds, { nonce: "", remoteAddr: peer }).then((p) => {
    if (p === undefined) throw new GrpcRefusal("AUTH_FAILED", "authentication failed");
    return principalOf(p);
  });
}

/**
 * Whether `p` may do `action` on `dest`; throws `GrpcRefusal`
 * (PERMISSION_DENIED) when not. Rules as src/auth/types.ts states them: a
 * deny pattern that matches wins, an allow list that is there must match,
 * no rules allow. A subscription pattern is checked as written.
 */
export function authorize(p: Principal, action: Action, dest: string): void {
  const rules: PermissionRules | undefined = p.permissions?.[action];
  if (rules === undefined) return;
  const hit = (patterns: string[] | undefined) =>
    patterns !== undefined && patterns.some((pat) => covers(pat, dest));
  if (hit(rules.deny) || (rules.allow !== undefined && !hit(rules.allow))) {
    throw new GrpcRefusal(
      "PERMISSION_DENIED",
      `user ${JSON.stringify(p.user)} may not ${action} ${dest}`,
    );
  }
}

/** Whether a permission pattern covers a destination (same kind, then the topic wildcard rules). */
function covers(pattern: string, dest: string): boolean {
  return pattern.slice(0, 6) === dest.slice(0, 6) && matches(pattern, dest);
}
