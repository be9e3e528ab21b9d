/**
 * Authentication, permissions and per-user limits: the users file's shape
 * (`types.ts`), shared by every listener (TCP, WebSocket, gRPC, UDP), so each
 * front end asks the same questions of the same answers.
 *
 * @module
 */
export type {
  PermissionRules,
  Role,
  UserEntry,
  UserLimits,
  UserPermissions,
  UsersFile,
} from "./types.ts";

// --- authentication: who a connection is ---
export {
  type AuthConfig,
  type AuthContext,
  Authenticator,
  type AuthStats,
  type Credentials,
  type Review,
  standInFor,
} from "./authenticator.ts";
export { addressKey, delayFor, FailedAttempts, hostOf } from "./attempts.ts";
export { generateKeyPair, keyFileText, newNonce, parsePublicKey, verifyNonce } from "./keys.ts";
export { hashPassword, parsePasswordHash, SCRYPT_DEFAULT, verifyPassword } from "./password.ts";
export { type AuthMethod, type Principal, TOKEN_PRINCIPAL, TOKEN_USER } from "./principal.ts";
export { parseUsers, readUsers, type User, type UserTable } from "./users.ts";
export { authConfigFrom } from "./settings.ts";

// Permissions and per-user limits (authorization).
export {
  Action,
  authorizationError,
  covers,
  overlaps,
  patternError,
  Permissions,
  permissionsOf,
  tokens,
} from "./permissions.ts";
export {
  type AuthzCounters,
  type LimitDefaults,
  type Limits,
  limitsError,
  resolveLimits,
  ResponseGrants,
  TokenBucket,
  UserConnections,
} from "./limits.ts";
