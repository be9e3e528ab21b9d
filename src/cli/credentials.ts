/**
 * `relayr passwd` and `relayr keygen`: make the credentials a users file
 * holds. `passwd` prints a password's scrypt hash (PHC string) as its last
 * line; `keygen` writes an Ed25519 key file (mode 0600, never over an
 * existing file) and prints its public key.
 *
 * @module
 */
import { generateKeyPair, hashPassword, keyFileText, SCRYPT_DEFAULT } from "../auth/mod.ts";
import { type Runtime, writeSecretFile } from "../runtime/mod.ts";
import {
  type CliIo,
  ExitCode,
  intFlag,
  lines,
  positionalArgs,
  runCommand,
  UsageError,
} from "./common.ts";

const PASSWD_HELP = `Usage: relayr passwd [options]

Reads a password and prints its scrypt hash (PHC string) as the last line, for
the "password" field of a users file. From a terminal it asks twice without
echo; otherwise it reads the first line of stdin:
  echo -n "$PW" | relayr passwd

Options:
      --cost <n>            scrypt cost as log2 N (default: ${
  Math.log2(SCRYPT_DEFAULT.N)
}; each +1 doubles
                            time and memory: 15 is ~120 ms and 32 MiB a login)
  -h, --help                show this help`;

const KEYGEN_HELP = `Usage: relayr keygen <file>

Writes a new Ed25519 key file (mode 0600; an existing file is never
overwritten) and prints its public key, for the "public_key" field of a users
file. Clients log in with it by signing the broker's nonce (--key <file>);
the broker stores nothing that lets anyone log in.

Options:
  -h, --help                show this help`;

/** Runs `relayr passwd`. */
export function passwdCommand(args: string[], runtime: Runtime, io: CliIo): Promise<number> {
  const flags = { cost: { type: "string" } } as const;
  return runCommand({ name: "passwd", help: PASSWD_HELP, flags }, args, io, async (parsed) => {
    positionalArgs(parsed.positionals, []);
    const ln = intFlag("cost", parsed.values.cost, Math.log2(SCRYPT_DEFAULT.N), 10, 20);
    const input = io.stdin()[Symbol.asyncIterator]();
    let password: string;
    if (runtime.stdinIsTerminal()) {
      password = await readHidden(runtime, io, input, "Password (not shown):");
      if (await readHidden(runtime, io, input, "Again:") !== password) {
        throw new UsageError("the passwords differ");
      }
    } else {
      const first = await lines({ [Symbol.asyncIterator]: () => input }).next();
      password = first.done ? "" : new TextDecoder().decode(first.value);
    }
    if (password === "") throw new UsageError("empty password");
    io.out(await hashPassword(password, { ...SCRYPT_DEFAULT, N: 2 ** ln }));
    return ExitCode.OK;
  });
}

/** Runs `relayr keygen`. */
export function keygenCommand(args: string[], _runtime: Runtime, io: CliIo): Promise<number> {
  return runCommand({ name: "keygen", help: KEYGEN_HELP, flags: {} }, args, io, async (parsed) => {
    const [path] = positionalArgs(parsed.positionals, ["<file>"]);
    const pair = await generateKeyPair();
    try {
      writeSecretFile(path, keyFileText(pair));
    } catch (e) {
      const why = (e as { code?: string }).code === "EEXIST"
        ? "it exists (keygen never overwrites a key)"
        : (e as Error).message.split("\n")[0];
      throw new UsageError(`cannot write ${JSON.stringify(path)}: ${why}`);
    }
    io.err(`wrote ${path}; users file entry: {"user":"<name>","public_key":"${pair.public_key}"}`);
    io.out(pair.public_key);
    return ExitCode.OK;
  });
}

/** One line from a terminal in raw mode: no echo; backspace edits; Ctrl-C or Ctrl-D gives up. */
async function readHidden(
  runtime: Runtime,
  io: CliIo,
  input: AsyncIterator<Uint8Array>,
  prompt: string,
): Promise<string> {
  // Raw (no echo) before the prompt shows, so nothing typed after it is echoed; on stderr:
  // stdout's last line is the hash.
  runtime.setStdinRaw(true);
  io.err(prompt);
  const bytes: number[] = [];
  try {
    for (;;) {
      const r = await input.next();
      if (r.done) throw new UsageError("no password (end of input)");
      for (const b of r.value) {
        if (b === 13 || b === 10) return new TextDecoder().decode(new Uint8Array(bytes));
        if (b === 3 || b === 4) throw new UsageError("cancelled");
        if (b === 127 || b === 8) bytes.pop();
        else bytes.push(b);
      }
    }
  } finally {
    runtime.setStdinRaw(false);
  }
}
