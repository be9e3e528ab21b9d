/**
 * The UDP ingest port's start-up (`--udp-port`).
 *
 * @module
 */
import { type Config, ConfigError } from "../config/mod.ts";
import type { Server } from "../server/mod.ts";
import { listenFailed } from "./listen_error.ts";

/**
 * Opens `--udp-port` when given. With authentication on it needs
 * `--udp-token` (a datagram has no connection to log in on). Throws
 * `ConfigError`; the caller closes what it opened.
 */
export async function startUdp(server: Server, config: Config, authOn: boolean): Promise<void> {
  const udpPort = config["udp-port"];
  if (udpPort === undefined) return;
  if (authOn && config["udp-token"] === undefined) {
    throw new ConfigError(
      "--udp-port with authentication on needs --udp-token (every datagram starts with AUTH <token>)",
    );
  }
  try {
    await server.startUdp({
      hostname: config.host,
      port: udpPort,
      token: authOn ? config["udp-token"] : undefined,
    });
  } catch (e) {
    throw listenFailed(e, "--udp-port", config.host, udpPort);
  }
}
