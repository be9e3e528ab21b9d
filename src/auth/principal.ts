/**
 * Who a connection is, once its `CONNECT` succeeded. Permissions and limits
 * read `entry`; a reload may replace a connection's principal (same user,
 * new permissions) or revoke it.
 *
 * @module
 */
import type { Role, UserEntry } from "./types.ts";

/** How the principal proved who it is. */
export type AuthMethod = "token" | "password" | "key" | "cert";

/** An authenticated identity. */
export interface Principal {
  /** The user name; `$token` for the holder of `--auth-token`. */
  readonly user: string;
  readonly roles: readonly Role[];
  /** The users-file entry; undefined for the token, which may do everything. */
  readonly entry: UserEntry | undefined;
  readonly method: AuthMethod;
}

/** The name the holder of `--auth-token` gets in stats and logs. */
export const TOKEN_USER = "$token";

/** The principal of the `--auth-token` holder: every permission, both roles. */
export const TOKEN_PRINCIPAL: Principal = Object.freeze({
  user: TOKEN_USER,
  roles: Object.freeze(["admin", "monitor"] as Role[]),
  entry: undefined,
  method: "token",
});
