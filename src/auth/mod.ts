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
