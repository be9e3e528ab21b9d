/** Test helper: parser frames as plain data (payloads as strings), so they compare with deepEqual. */
import type { Frame } from "../../src/protocol/mod.ts";

/** Frames as plain data (payloads as strings) so they compare with deepEqual. */
export function plain(frames: Frame[]): unknown[] {
  return frames.map((f) =>
    f.op === "PUB"
      ? { op: f.op, dest: f.dest, payload: new TextDecoder().decode(f.payload), options: f.options }
      : { ...f }
  );
}
