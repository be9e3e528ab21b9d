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
import {
  Action as AuthAction,
  type Authenticator,
  type Credentials,
  type Permissions,
  permissionsOf,
  type Principal as AuthPrincipal,
} from "../auth/mod.ts";
import { GrpcRefusal } from "./errors.ts";

/** Who a call runs as. */
export interface Principal {
  /** The user name (`$token` for the token's holder); undefined when authentication is off. */
  readonly user: string | undefined;
  /** The user's compiled permissions (src/auth/); undefined: everything is allowed (auth off, or the token). */
  readonly perms: Permissions | undefined;
  /** The Authenticator's principal (auth on), which a reload reviews. */
  readonly of: AuthPrincipal | undefined;
}

/** What a caller wants to do with a destination (the permission kinds of src/auth/). */
export type Action = "publish" | "subscribe" | "consume" | "admin";

const ACTIONS: Record<Action, AuthAction> = {
  publish: AuthAction.PUBLISH,
  subscribe: AuthAction.SUBSCRIBE,
  consume: AuthAction.CONSUME,
  admin: AuthAction.ADMIN,
};

const ANONYMOUS: Principal = Object.freeze({ user: undefined, perms: undefined, of: undefined });

/** Ours for the Authenticator's principal. */
export function principalOf(p: AuthPrincipal): Principal {
  return { user: p.user, perms: p.entry === undefined ? undefined : permissionsOf(p.entry), of: p };
}
/**
 * The subject of a call's verified client certificate (mTLS), as the TCP
 * listeners spell it (`CN=svc,O=Acme`); undefined without one.
 */
export function certSubjectOf(
  authContext: { sslPeerCertificate?: { subject?: object } },
): string | undefined {
  const subject = authContext.sslPeerCertificate?.subject;
  if (subject === undefined || Object.keys(subject).length === 0) return undefined;
  return Object.entries(subject).map(([k, v]) => `${k}=${v}`).join(",");
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
  certSubject: string | undefined,
): Principal | Promise<Principal> {
  if (auth === undefined) return ANONYMOUS;
  const c = credentialOf(md);
  if (c.kind === "none" && certSubject === undefined) {
    return Promise.reject(
      new GrpcRefusal(
        "AUTH_REQUIRED",
        "authenticate with metadata authorization: Bearer <token>, or user and pass",
      ),
    );
  }
  // No metadata credential over mTLS: the client certificate's subject (a `cert_subject` user).
  const creds: Credentials = c.kind === "token"
    ? { auth_token: c.token }
    : c.kind === "password"
    ? { user: c.user, pass: c.pass }
    : {};
  const ctx = { nonce: "", remoteAddr: peer, peerCertSubject: certSubject };
  return auth.authenticate(creds, ctx).then((p) => {
    if (p === undefined) throw new GrpcRefusal("AUTH_FAILED", "authentication failed");
    return principalOf(p);
  });
}

/**
 * Whether `p` may do `action` on `dest`; throws `GrpcRefusal`
 * (PERMISSION_DENIED) when not. The decision is src/auth/'s `Permissions`,
 * the one a TCP connection asks: a deny wins, an allow list must match, no
 * rules allow; a topic pattern to subscribe to is allowed when it could
 * match an allowed topic, and each topic it binds to is then asked again
 * (`mayRead`).
 */
export function authorize(p: Principal, action: Action, dest: string): void {
  const perms = p.perms;
  if (perms === undefined) return;
  const ok = action === "subscribe" || action === "consume"
    ? perms.maySubscribe(dest)
    : perms.may(ACTIONS[action], dest);
  if (!ok) {
    throw new GrpcRefusal(
      "PERMISSION_DENIED",
      `user ${JSON.stringify(p.user)} may not ${action} ${dest}`,
    );
  }
}
