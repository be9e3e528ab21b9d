/**
 * The authentication settings of a configuration: the token (`--auth-token`,
 * `RELAYR_AUTH_TOKEN`, `auth-token` in `--config`) and the users (`--users
 * <file>`, or the `users` key of `--config`, a path or the list itself).
 * Read at start-up and again on SIGHUP.
 *
 * @module
 */
import { type Config, ConfigError } from "../config/mod.ts";
import type { AuthConfig } from "./authenticator.ts";
import { parseUsers, readUsers, type UserTable } from "./users.ts";

/** The token and users a configuration names; both undefined: authentication is off. Throws `ConfigError`. */
export function authConfigFrom(config: Config, readFile: (path: string) => string): AuthConfig {
  const token = config["auth-token"];
  if (token !== undefined && token.trim() === "") {
    throw new ConfigError("--auth-token must not be empty");
  }
  let users: UserTable | undefined;
  if (config.users !== undefined) users = readUsers(config.users, readFile);
  else if (config.config !== undefined) {
    // loadConfig already read and checked the file; here only a list under `users` matters.
    const file = JSON.parse(readFile(config.config)) as Record<string, unknown>;
    if (file.users !== undefined && typeof file.users !== "string") {
      users = parseUsers(file.users, `users in ${JSON.stringify(config.config)}`);
    }
  }
  return { token, users };
}
