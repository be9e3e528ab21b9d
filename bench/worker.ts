/**
 * A bench worker thread: runs one task at a time from the coordinator, so the
 * publisher and each receiver have their own event loop and core time.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type Control, publish, receive, request, respond, stop } from "./roles.ts";
import type { FromWorker, Task, TaskResult, ToWorker } from "./tasks.ts";

let control: Control | null = null;

function post(message: FromWorker): void {
  self.postMessage(message);
}

function run(task: Task, ctl: Int32Array, c: Control): Promise<TaskResult> {
  const ready = () => post({ type: "ready" });
  switch (task.role) {
    case "publish":
      ready();
      return publish(task, ctl, c);
    case "receive":
      return receive(task, ctl, c, ready);
    case "request":
      ready();
      return request(task, c);
    case "respond":
      return respond(task, c, ready);
  }
}

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "stop") {
    if (control) stop(control);
    return;
  }
  const c: Control = { stopped: false, wire: null };
  control = c;
  try {
    const result = await run(m.task, new Int32Array(m.ctl), c);
    post({ type: "done", result });
  } catch (err) {
    post({ type: "failed", error: err instanceof Error ? err.message : String(err) });
  } finally {
    c.wire?.close();
    if (control === c) control = null;
  }
};
