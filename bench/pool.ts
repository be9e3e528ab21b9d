/**
 * A pool of bench worker threads, reused across runs so their JIT stays warm
 * and a run does not pay for thread start-up.
 *
 * @module
 */
import type { FromWorker, Task, TaskResult, ToWorker } from "./tasks.ts";

/** A task running on one worker. */
export interface Job {
  /** Resolves once the task is connected and subscribed (or has ended). */
  ready: Promise<void>;
  /** The task's report. */
  done: Promise<TaskResult>;
  /** Asks the task to stop: it closes its connection and reports. */
  stop(): void;
  /** Terminates the worker thread (a task that does not answer `stop`). */
  kill(): void;
}

/** Worker threads running `worker.ts`. */
export class WorkerPool {
  #idle: Worker[] = [];
  #all = new Set<Worker>();

  /** Runs `task` on an idle worker (or a new one). */
  run(task: Task, ctl: SharedArrayBuffer): Job {
    const worker = this.#idle.pop() ?? this.#spawn();
    let settled = false;
    let readyResolve = () => {};
    const ready = new Promise<void>((r) => readyResolve = r);
    let fail = (_err: Error) => {};
    const done = new Promise<TaskResult>((resolve, reject) => {
      fail = (err) => {
        if (settled) return;
        settled = true;
        readyResolve();
        reject(err);
      };
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "ready") return readyResolve();
        if (settled) return;
        settled = true;
        readyResolve();
        this.#idle.push(worker);
        if (m.type === "done") resolve(m.result);
        else reject(new Error(m.error));
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#terminate(worker);
        fail(new Error(`worker crashed: ${e.message}`));
      };
    });
    done.catch(() => {}); // callers await it; this keeps an early failure from being unhandled
    const message: ToWorker = { type: "run", task, ctl };
    worker.postMessage(message);
    return {
      ready,
      done,
      stop: () => worker.postMessage({ type: "stop" } satisfies ToWorker),
      kill: () => {
        this.#terminate(worker);
        fail(new Error("worker did not stop and was terminated"));
      },
    };
  }

  #spawn(): Worker {
    const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    this.#all.add(worker);
    return worker;
  }

  #terminate(worker: Worker): void {
    worker.terminate();
    this.#all.delete(worker);
    this.#idle = this.#idle.filter((w) => w !== worker);
  }

  /** Terminates every worker. */
  close(): void {
    for (const w of this.#all) w.terminate();
    this.#all.clear();
    this.#idle = [];
  }
}
