/**
 * Raw-protocol drivers for the systems the bench compares: each one encodes
 * frames and parses replies on bytes, nothing more.
 *
 * @module
 */
import { nats } from "./nats.ts";
import { natsJs } from "./natsjs.ts";
import { redis } from "./redis.ts";
import { relayr } from "./relayr.ts";
import type { Driver, Protocol } from "./types.ts";

export type { Driver, Events, FrameShape, Kind, Parser, Protocol } from "./types.ts";
export { Mode } from "./types.ts";

/** The driver of each protocol. */
export const drivers: Record<Protocol, Driver> = { relayr, nats, "nats-js": natsJs, redis };
