/**
 * Server configuration from flags, environment variables and a JSON file.
 * Precedence, highest first: flag, environment variable (`RELAYR_` + the flag
 * name in upper snake case), config file (`--config`, keys are flag names),
 * built-in default. One table describes every setting, so `--help`, the env
 * names and the file keys cannot drift apart.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as L from "./limits.ts";
import { jsonErrorText } from "./json_error.ts";
import type { TlsConfig } from "./tls.ts";
import type { ClusterTlsConfig } from "./cluster_tls.ts";
import { readClusterSecret } from "./cluster_secret.ts";

/** When the log is forced to the device (see docs/PERSISTENCE.md). */
export type FsyncPolicy = "always" | "interval" | "never";

/** The fsync policies, for the settings table and validation. */
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ["always", "interval", "never"];

type Kind = "int" | "string" | "bool";

interface Setting {
  kind: Kind;
  default: number | string | boolean | undefined;
  help: string;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** In the config file the key may also hold the value itself (JSON, not a path); its owner reads it there. */
  inline?: true;
}

/** Every server setting, by flag name. */
export const SETTINGS = {
  "host": { kind: "string", default: "0.0.0.0", help: "address to listen on" },
  "port": { kind: "int", default: 9092, min: 0, max: 65535, help: "TCP port of the wire protocol" },
  "http-port": { kind: "int", default: 8222, min: 0, max: 65535, help: "HTTP monitoring port" },
  "http-host": {
    kind: "string",
    default: undefined,
    help: "HTTP monitoring address (default: --host)",
  },
  "no-http": { kind: "bool", default: false, help: "turn HTTP monitoring off" },
  // gRPC front end (src/grpc/, docs/GRPC.md)
  "grpc-port": {
    kind: "int",
    default: undefined,
    min: 0,
    max: 65535,
    help: `gRPC port (relayr.v1.Broker); default ${L.GRPC_PORT} on Bun, off on Deno unless given`,
  },
  "no-grpc": { kind: "bool", default: false, help: "turn the gRPC listener off" },

  "ws-port": {
    kind: "int",
    default: undefined,
    min: 0,
    max: 65535,
    help: "WebSocket port of its own, besides /ws on the HTTP port",
  },
  "no-ws": {
    kind: "bool",
    default: false,
    help: "turn the WebSocket transport off (/ws and --ws-port)",
  },
  "ws-allowed-origins": {
    kind: "string",
    default: undefined,
    help:
      "origins allowed to open a WebSocket besides the broker's own, comma-separated (* for any)",
  },
  "max-payload": {
    kind: "int",
    default: L.PAYLOAD_BYTES_MAX,
    min: 1,
    max: 64 * 1024 * 1024,
    help: "largest message payload in bytes",
  },
  "max-connections": {
    kind: "int",
    default: L.CONNECTIONS_MAX,
    min: 1,
    max: 1_000_000,
    help: "most open connections",
  },
  "ping-interval": {
    kind: "int",
    default: L.PING_INTERVAL_MS,
    min: 10,
    max: 3_600_000,
    help: "ms of client silence before the server PINGs; 2 missed PINGs close it",
  },
  "ack-timeout": {
    kind: "int",
    default: L.ACK_TIMEOUT_MS,
    min: 1,
    max: L.ACK_TIMEOUT_MS_MAX,
    help: "default ms a consumer has to ACK before redelivery",
  },
  "prefetch": {
    kind: "int",
    default: L.PREFETCH_DEFAULT,
    min: 1,
    max: L.PREFETCH_MAX,
    help: "default unacked messages per consumer",
  },
  "max-deliveries": {
    kind: "int",
    default: L.DELIVERIES_MAX,
    min: 1,
    max: 1000,
    help: "deliveries before a message goes to <queue>.dlq",
  },
  "queue-max-messages": {
    kind: "int",
    default: L.QUEUE_MESSAGES_MAX,
    min: 1,
    max: 1_000_000_000,
    help: "messages one queue may hold",
  },
  "queue-max-bytes": {
    kind: "int",
    default: L.QUEUE_BYTES_MAX,
    min: 1,
    max: 2 ** 50,
    help: "payload bytes one queue may hold",
  },
  "queue-overflow": {
    kind: "string",
    default: "reject",
    choices: ["reject", "drop-oldest"],
    help: "what a full queue does with a new message",
  },
  "slow-consumer": {
    kind: "string",
    default: "disconnect",
    choices: ["disconnect", "drop-oldest", "block"],
    help: "what happens to a topic subscriber too far behind (block: its publishers pause)",
  },
  "slow-consumer-block-ms": {
    kind: "int",
    default: L.SLOW_CONSUMER_BLOCK_MS,
    min: 1,
    max: L.SLOW_CONSUMER_BLOCK_MS_MAX,
    help: "with --slow-consumer block: how long publishers wait before the subscriber is cut off",
  },
  "sub-pending-messages": {
    kind: "int",
    default: L.SUB_PENDING_MESSAGES_MAX,
    min: 1,
    max: 100_000_000,
    help: "messages a topic subscriber may fall behind",
  },
  "sub-pending-bytes": {
    kind: "int",
    default: L.SUB_PENDING_BYTES_MAX,
    min: 1,
    max: 2 ** 40,
    help: "bytes a topic subscriber may fall behind",
  },
  "data-dir": {
    kind: "string",
    default: undefined,
    help: "directory of the durable queue log (relayr serve: ./data unless --memory)",
  },
  "memory": { kind: "bool", default: false, help: "keep queues in memory only, no data dir" },
  "fsync": {
    kind: "string",
    default: "interval",
    choices: FSYNC_POLICIES,
    help: "force the log to disk before each publish OK, every --fsync-interval ms, or never",
  },
  "fsync-interval": {
    kind: "int",
    default: L.FSYNC_INTERVAL_MS,
    min: 1,
    max: 60_000,
    help: "ms between fsyncs under --fsync interval (what a power cut can lose)",
  },
  "log-level": {
    kind: "string",
    default: "info",
    choices: ["debug", "info", "warning", "error"],
    help: "lowest level logged",
  },
  "log-format": {
    kind: "string",
    default: "text",
    choices: ["text", "json"],
    help: "log line format",
  },
  // --- authentication (docs/SECURITY.md) ---
  "auth-token": {
    kind: "string",
    default: undefined,
    help: "token clients must send (auth_token in CONNECT); turns authentication on",
  },
  "users": {
    kind: "string",
    default: undefined,
    inline: true,
    help: "users file (JSON; in --config also the list itself); turns authentication on",
  },
  "auth-timeout": {
    kind: "int",
    default: L.AUTH_TIMEOUT_MS,
    min: 10,
    max: 600_000,
    help: "ms a connection has to authenticate before it is closed",
  },
  "udp-port": {
    kind: "int",
    default: undefined,
    min: 0,
    max: 65535,
    help: "UDP port for fire-and-forget PUB datagrams (off when not given; 0: any free port)",
  },
  "udp-token": {
    kind: "string",
    default: undefined,
    help: "with authentication on: the token every UDP datagram starts with (AUTH <token>)",
  },
  "config": {
    kind: "string",
    default: undefined,
    help: "JSON file of settings (keys are these flag names)",
  },
  // --- TLS (src/config/tls.ts reads and checks the files into `config.tls`) ---
  "tls-cert": {
    kind: "string",
    default: undefined,
    help: "PEM certificate chain of the client port (turns TLS on, with --tls-key)",
  },
  "tls-key": { kind: "string", default: undefined, help: "PEM private key of --tls-cert" },
  "tls-ca": {
    kind: "string",
    default: undefined,
    help: "PEM CA bundle: require client certificates signed by it (mTLS)",
  },
  "tls-required": {
    kind: "string",
    default: "true",
    choices: ["true", "false"],
    help: "with TLS on, plain connections are refused; false is refused too (see docs/SECURITY.md)",
  },
  "http-tls": {
    kind: "bool",
    default: false,
    help: "serve the monitoring port over HTTPS with --tls-cert and --tls-key",
  },
  // Clustering (docs/CLUSTERING.md): off unless --cluster-etcd is given.
  "cluster-etcd": {
    kind: "string",
    default: undefined,
    help: "etcd endpoint (http://host:2379): join a cluster; needs --node-id",
  },
  "node-id": {
    kind: "string",
    default: undefined,
    help: "this node's name in the cluster (unique among live nodes)",
  },
  "cluster-listen": {
    kind: "string",
    default: undefined,
    help: "host:port of the inter-node link (needed with --cluster-etcd)",
  },
  "cluster-advertise": {
    kind: "string",
    default: undefined,
    help: "host:port other nodes dial for the link (default: --cluster-listen)",
  },
  "cluster-lease-ttl": {
    kind: "int",
    default: L.CLUSTER_LEASE_TTL_S,
    min: 1,
    max: 600,
    help: "seconds a dead node keeps its membership and leaderships",
  },
  "cluster-secret-file": {
    kind: "string",
    default: undefined,
    help: "file (0600) holding the cluster secret, 32+ bytes (or RELAYR_CLUSTER_SECRET)",
  },
  // TLS of the inter-node link (src/config/cluster_tls.ts, docs/CLUSTERING.md): all three or none.
  "cluster-tls-cert": {
    kind: "string",
    default: undefined,
    help: "PEM certificate of this node on the cluster port (mutual TLS, with the key and CA)",
  },
  "cluster-tls-key": {
    kind: "string",
    default: undefined,
    help: "PEM private key of --cluster-tls-cert",
  },
  "cluster-tls-ca": {
    kind: "string",
    default: undefined,
    help: "PEM CA bundle every node's cluster certificate must chain to",
  },
  "cluster-tls-server-name": {
    kind: "string",
    default: undefined,
    help: "name every node's cluster certificate carries (default: the host of its address)",
  },
  replicas: {
    kind: "int",
    default: L.CLUSTER_REPLICAS_DEFAULT,
    min: 1,
    max: L.CLUSTER_MEMBERS_MAX,
    help: "copies of each queue in a cluster, the leader's included (fewer if fewer nodes)",
  },
} as const satisfies Record<string, Setting>;

/** A setting's name. */
export type SettingName = keyof typeof SETTINGS;

type ValueOf<S> = S extends { kind: "int"; default: number } ? number
  : S extends { kind: "int" } ? number | undefined
  : S extends { kind: "bool" } ? boolean
  : S extends { default: string } ? string
  : string | undefined;

/** The resolved configuration. */
export type Config = { -readonly [K in SettingName]: ValueOf<typeof SETTINGS[K]> } & {
  /** The TLS files read and checked (PEM text), once at start-up; undefined: TLS is off. */
  tls?: TlsConfig;
  /** The cluster secret (cluster_secret.ts), read once at start-up; undefined: none given. */
  clusterSecret?: Uint8Array;
  /** The link's TLS files (cluster_tls.ts), read and checked at start-up; undefined: plain TCP. */
  clusterTls?: ClusterTlsConfig;
};

/** A configuration mistake; `main` prints it as one line and exits 2. */
export class ConfigError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Environment variable name of a setting: `max-payload` is `RELAYR_MAX_PAYLOAD`. */
export function envName(name: string): string {
  return `RELAYR_${name.toUpperCase().replaceAll("-", "_")}`;
}

/** What `loadConfig` needs from outside, so it stays testable. */
export interface ConfigSources {
  args: string[];
  env: (name: string) => string | undefined;
  readFile: (path: string) => string;
}

/** Resolves the configuration; throws `ConfigError` on a bad value. Also returns left-over positionals. */
export function loadConfig(
  src: ConfigSources,
): { config: Config; help: boolean; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, s] of Object.entries(SETTINGS)) {
    options[name] = { type: s.kind === "bool" ? "boolean" : "string" };
  }
  let parsed;
  try {
    const args = joinDashValues(src.args, options);
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    // parseArgs explains over three lines; the first says what is wrong.
    throw new ConfigError((e as Error).message.split("\n")[0]);
  }
  const flags = parsed.values as Record<string, string | boolean | undefined>;
  const configPath = (flags.config as string | undefined) ?? src.env(envName("config"));
  let file: Record<string, unknown> = {};
  if (configPath !== undefined) {
    let text: string;
    try {
      text = src.readFile(configPath);
    } catch (e) {
      throw new ConfigError(
        `cannot read config file ${JSON.stringify(configPath)}: ${(e as Error).message}`,
      );
    }
    try {
      file = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(
        `config file ${JSON.stringify(configPath)} is not JSON: ${
          jsonErrorText((e as Error).message)
        }`,
      );
    }
    if (typeof file !== "object" || file === null || Array.isArray(file)) {
      throw new ConfigError(`config file ${JSON.stringify(configPath)} must hold a JSON object`);
    }
    for (const key of Object.keys(file)) {
      if (!(key in SETTINGS)) {
        throw new ConfigError(`unknown setting ${JSON.stringify(key)} in ${configPath}`);
      }
    }
  }
  const config: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(SETTINGS) as [string, Setting][]) {
    let raw: unknown = flags[name];
    let from = `--${name}`;
    if (raw === undefined && src.env(envName(name)) !== undefined) {
      raw = src.env(envName(name));
      from = envName(name);
    }
    if (
      raw === undefined && file[name] !== undefined && !(s.inline && typeof file[name] !== "string")
    ) {
      raw = file[name];
      from = `${name} in ${configPath}`;
    }
    config[name] = raw === undefined ? s.default : coerce(s, raw, from);
  }
  // Wherever each came from (flag, environment, file): a memory broker has no data dir.
  if (config.memory === true && config["data-dir"] !== undefined) {
    throw new ConfigError("--memory and --data-dir exclude each other");
  }
  checkCluster(config);
  const secretFile = config["cluster-secret-file"] as string | undefined;
  config.clusterSecret = readClusterSecret(secretFile, src.env, src.readFile);
  return { config: config as Config, help: flags.help === true, positionals: parsed.positionals };
}

/** The cluster settings go together: `--node-id` (a safe name) with `--cluster-etcd` (an http URL). */
function checkCluster(config: Record<string, unknown>): void {
  const etcd = config["cluster-etcd"] as string | undefined;
  const id = config["node-id"] as string | undefined;
  if (etcd === undefined) {
    if (id !== undefined || config["cluster-listen"] !== undefined) {
      throw new ConfigError("--node-id and --cluster-listen need --cluster-etcd");
    }
    return;
  }
  if (!/^https?:\/\/[^\s/]+\/?$/.test(etcd)) {
    throw new ConfigError(
      `--cluster-etcd must be an http://host:port URL, got ${JSON.stringify(etcd)}`,
    );
  }
  if (id === undefined) throw new ConfigError("--cluster-etcd needs --node-id");
  for (const name of ["cluster-listen", "cluster-advertise"]) {
    const v = config[name] as string | undefined;
    if (v === undefined && name === "cluster-listen") {
      throw new ConfigError("--cluster-etcd needs --cluster-listen host:port");
    }
    if (v !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$/.test(v)) {
      throw new ConfigError(`--${name} must be host:port, got ${JSON.stringify(v)}`);
    }
  }
  const listen = config["cluster-listen"] as string;
  if (config["cluster-advertise"] === undefined && /^(0\.0\.0\.0|\[::\]):/.test(listen)) {
    throw new ConfigError(
      `--cluster-listen ${listen} is not an address other nodes can dial: give --cluster-advertise`,
    );
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
    throw new ConfigError(
      `--node-id must be 1-64 letters, digits, "_", "." or "-", got ${JSON.stringify(id)}`,
    );
  }
}

/**
 * `args` with a value that looks like a negative number joined to the string
 * flag before it (`--max-payload -5` becomes `--max-payload=-5`, `-n -5`
 * becomes `--count=-5`), so the flag's own check reports its range.
 * `node:util`'s `parseArgs` (Deno 2.9 and Bun 1.4 alike) otherwise fails with
 * "argument is ambiguous"; its `allowNegative` is about `--no-<flag>`
 * booleans, not values. Other values that start with "-" stay ambiguous: there
 * a forgotten value is the likelier mistake.
 */
export function joinDashValues(
  args: readonly string[],
  options: Readonly<Record<string, { type: string; short?: string }>>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    const name = arg.startsWith("--")
      ? arg.slice(2)
      : /^-[^-]$/.test(arg)
      ? Object.keys(options).find((k) => options[k].short === arg[1])
      : undefined;
    const next = args[i + 1];
    if (
      name !== undefined && Object.hasOwn(options, name) && options[name].type === "string" &&
      next !== undefined && /^-[0-9]/.test(next)
    ) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function coerce(s: Setting, raw: unknown, from: string): unknown {
  if (s.kind === "bool") {
    if (typeof raw === "boolean") return raw;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0" || raw === "") return false;
    throw new ConfigError(`${from} must be true or false`);
  }
  if (s.kind === "int") {
    const n = typeof raw === "number" ? raw : /^-?[0-9]+$/.test(String(raw)) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < (s.min ?? -Infinity) || n > (s.max ?? Infinity)) {
      throw new ConfigError(
        `${from} must be an integer from ${s.min} to ${s.max}, got ${JSON.stringify(raw)}`,
      );
    }
    return n;
  }
  const v = String(raw);
  if (s.choices && !s.choices.includes(v)) {
    throw new ConfigError(
      `${from} must be one of ${s.choices.join(", ")}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** The `--help` text of `relayr serve`. */
export function serveHelp(): string {
  const lines = [
    "Usage: relayr [serve] [options]",
    "",
    "Starts the broker. Every option can also be set with an environment variable",
    "(RELAYR_ + the name in upper snake case, e.g. RELAYR_PORT) or in the JSON file",
    "given by --config; a flag beats the environment, which beats the file.",
    "",
    "Options:",
  ];
  for (const [name, s] of Object.entries(SETTINGS) as [string, Setting][]) {
    const arg = s.kind === "bool"
      ? ""
      : s.choices
      ? ` <${s.choices.join("|")}>`
      : s.kind === "int"
      ? " <n>"
      : " <value>";
    const def = s.default === undefined || s.kind === "bool" ? "" : ` (default: ${s.default})`;
    const flag = `  --${name}${arg}`;
    lines.push(
      flag.length < 44
        ? flag.padEnd(44) + s.help + def
        : `${flag}\n${" ".repeat(44)}${s.help}${def}`,
    );
  }
  lines.push("  -h, --help".padEnd(44) + "show this help");
  return lines.join("\n");
}
