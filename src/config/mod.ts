/**
 * Configuration: every limit of the broker (`limits.ts`, one named constant
 * each) and the server settings from flags, environment and a config file
 * (`config.ts`, one table). Other folders import this file only.
 *
 * @module
 */
export * from "./limits.ts";
export {
  type Config,
  ConfigError,
  type ConfigSources,
  envName,
  FSYNC_POLICIES,
  type FsyncPolicy,
  joinDashValues,
  loadConfig,
  serveHelp,
  type SettingName,
  SETTINGS,
} from "./config.ts";
export { readTls, type TlsConfig, type TlsSources } from "./tls.ts";
export { jsonErrorText } from "./json_error.ts";
export { CLUSTER_SECRET_ENV, readClusterSecret } from "./cluster_secret.ts";
export {
  type ClusterTlsConfig,
  type ClusterTlsSources,
  readClusterTls,
  sharesCertificate,
} from "./cluster_tls.ts";
