/**
 * The shape of users, credentials, permissions and per-user limits: the users
 * file (`--users`, or the `users` key of `--config`) is `{ "users": UserEntry[] }`.
 * Authentication (who is this?) and authorization (may they?) both read these
 * types; the connection holds a `Principal` once its `CONNECT` succeeded.
 *
 * @module
 */

/** Destination patterns a user may or may not use; deny wins, no list means allowed. */
export interface PermissionRules {
  /** Patterns allowed (`queue:orders.*`, `topic:events.>`); absent: everything. */
  allow?: string[];
  /** Patterns denied; a match here wins over any allow. */
  deny?: string[];
}

/** What a user may do, per action. */
export interface UserPermissions {
  /** `PUB` to queues and topics. */
  publish?: PermissionRules;
  /** `SUB` to topics (a wildcard subscription only receives what is allowed). */
  subscribe?: PermissionRules;
  /** `SUB` to queues (consume). */
  consume?: PermissionRules;
  /** `DECLARE`, `UNSUB forget:true` and admin actions on a destination. */
  admin?: PermissionRules;
  /** May publish to the `reply_to` of a message it received, even where publish is denied. */
  allow_responses?: boolean;
}

/** Per-user limits; absent fields take the server's defaults. */
export interface UserLimits {
  /** Open connections of this user at once. */
  connections?: number;
  /** Subscriptions per connection. */
  subscriptions?: number;
  /** Largest payload in bytes. */
  max_payload?: number;
  /** Messages per second (token bucket); over it reading pauses, nothing is dropped. */
  publish_rate?: number;
  /** Bucket size of `publish_rate` (messages); default: one second's worth. */
  publish_burst?: number;
  /** Outbound bytes waiting for the socket before the connection is a slow consumer. */
  pending_bytes?: number;
}

/** Roles beyond the destination permissions. */
export type Role = "admin" | "monitor";

/** One entry of the users file. Exactly one credential kind per entry. */
export interface UserEntry {
  /** The user name (`"user"` in CONNECT). */
  user: string;
  /** A password hash in PHC string format (`$scrypt$...` or `$argon2id$...`), never a plain password. */
  password?: string;
  /** An Ed25519 public key, base64url of the raw 32 bytes (`relayr keygen` prints it). */
  public_key?: string;
  /** The subject of a client certificate (mTLS), as `Conn.peerCertSubject` reports it. */
  cert_subject?: string;
  /** `admin` (admin API and console actions) and/or `monitor` (`/metrics`, `/api/*` reads). */
  roles?: Role[];
  permissions?: UserPermissions;
  limits?: UserLimits;
}

/** The users file. */
export interface UsersFile {
  users: UserEntry[];
}
