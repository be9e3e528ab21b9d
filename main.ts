/**
 * Relayr: `relayr [serve]` starts the broker; other subcommands are the
 * client command line (`relayr --help`).
 *
 * @module
 */
import { main } from "./src/app.ts";
import { loadRuntime } from "./src/runtime/mod.ts";

if (import.meta.main) {
  const runtime = await loadRuntime();
  runtime.exit(await main(runtime, runtime.args()));
}
