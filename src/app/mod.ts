/**
 * The start-up of each listener and of the store, as `src/app.ts` composes
 * them: each opens one thing from the configuration, and a failure is one
 * `ConfigError` line; `startBroker` closes what was already open.
 *
 * @module
 */
export { logListening } from "./banner.ts";
export { checkGrpcTls, grpcPortOf, startGrpc } from "./grpc.ts";
export { startHttp, startWs, webSocketOptions } from "./http.ts";
export { listenFailed } from "./listen_error.ts";
export { logRecovery, openStore } from "./store.ts";
export { startUdp } from "./udp.ts";
