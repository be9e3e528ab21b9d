/**
 * Start-up refusals of the link's TLS settings, each a real `relayr serve`
 * child process: one clear line on stderr and exit 2, before the node
 * listens or touches etcd (its endpoint here is a closed port, so a node
 * that got past the TLS checks says it cannot reach etcd instead).
 */
import assert from "node:assert/strict";
import { linkTlsArgs, makeLinkCerts } from "./link_tls_certs.ts";

const decoder = new TextDecoder();
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** Nothing listens on port 9 of 127.0.0.1 (discard): etcd unreachable. */
const NO_ETCD = "http://127.0.0.1:9";

/** Runs `serve` with `args` (and `env`); returns its exit code and stderr. */
async function serve(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; err: string; out: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", "--memory", "--host", "127.0.0.1", "--port", "0"].concat(
      ["--http-port", "0", "--no-grpc", ...args],
    ),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  return {
    code: out.code,
    err: decoder.decode(out.stderr).trim(),
    out: decoder.decode(out.stdout),
  };
}

const CLUSTER = ["--cluster-etcd", NO_ETCD, "--node-id", "n1", "--cluster-listen", "127.0.0.1:0"];

Deno.test("link TLS start-up: a missing, unreadable or mismatched file, or a partial set, is one line and exit 2", async () => {
  const certs = await makeLinkCerts(2);
  try {
    const n1 = certs.node(1);
    const n2 = certs.node(2);
    // The base64 lines of the private keys: in no message.
    const keyLines = [n1.key, n2.key].flatMap((f) =>
      Deno.readTextFileSync(f).split("\n").filter((l) => l.length > 20 && !l.startsWith("---"))
    );
    const cases: { name: string; args: string[]; env?: Record<string, string>; want: RegExp }[] = [
      {
        name: "only the certificate",
        args: [...CLUSTER, "--cluster-tls-cert", n1.cert],
        want:
          /^relayr: --cluster-tls-cert needs --cluster-tls-key and --cluster-tls-ca: the link's TLS is mutual/,
      },
      {
        name: "certificate and key from the environment, no CA",
        args: CLUSTER,
        env: { RELAYR_CLUSTER_TLS_CERT: n1.cert, RELAYR_CLUSTER_TLS_KEY: n1.key },
        want: /--cluster-tls-cert and --cluster-tls-key need --cluster-tls-ca/,
      },
      {
        name: "no --cluster-etcd",
        args: linkTlsArgs(certs, 1),
        want: /--cluster-tls-cert needs --cluster-etcd/,
      },
      {
        name: "a certificate file that does not exist",
        args: [...CLUSTER, ...linkTlsArgs(certs, 1).with(1, `${certs.dir}/nope.pem`)],
        want: /^relayr: cannot read --cluster-tls-cert ".*nope\.pem": .*give a PEM file/,
      },
      {
        name: "a CA that cannot be read (a directory)",
        args: [...CLUSTER, ...linkTlsArgs(certs, 1).with(5, certs.dir)],
        want: /^relayr: cannot read --cluster-tls-ca ".*": /,
      },
      {
        name: "the key of another certificate",
        args: [...CLUSTER, ...linkTlsArgs(certs, 1).with(3, n2.key)],
        want:
          /--cluster-tls-key ".*n2\.key" does not belong to the certificate of --cluster-tls-cert/,
      },
      {
        name: "a key file holding a certificate",
        args: [...CLUSTER, ...linkTlsArgs(certs, 1).with(3, n1.cert)],
        want: /--cluster-tls-key ".*n1\.pem" holds no PEM private key/,
      },
      {
        name: "a certificate from another CA",
        args: [...CLUSTER, "--cluster-tls-cert", certs.foreign.cert].concat(
          ["--cluster-tls-key", certs.foreign.key, "--cluster-tls-ca", certs.ca],
        ),
        want: /--cluster-tls-cert ".*foreign\.pem" is not signed by a CA of --cluster-tls-ca/,
      },
      {
        name: "a certificate without the address peers dial",
        args: [...CLUSTER, "--cluster-tls-cert", certs.misnamed.cert].concat(
          ["--cluster-tls-key", certs.misnamed.key, "--cluster-tls-ca", certs.ca],
        ),
        want: /does not name "127\.0\.0\.1" in its subjectAltName, .* add IP:127\.0\.0\.1/,
      },
      {
        name: "the client CA as the cluster CA, without a secret",
        args: [...CLUSTER, ...linkTlsArgs(certs, 1), "--tls-cert", n2.cert, "--tls-key", n2.key]
          .concat(["--tls-ca", certs.ca]),
        want: /--cluster-tls-ca trusts a CA of client certificates \(--tls-ca\)/,
      },
    ];
    for (const c of cases) {
      const r = await serve(c.args, c.env);
      assert.equal(r.code, 2, `${c.name}: ${r.err}`);
      assert.equal(r.err.split("\n").length, 1, `${c.name}: ${r.err}`);
      assert.match(r.err, c.want, c.name);
      for (const secret of keyLines) assert.ok(!(r.err + r.out).includes(secret), c.name);
      assert.doesNotMatch(r.out, /listening/, c.name);
    }
  } finally {
    certs.remove();
  }
});

Deno.test("link TLS start-up: mutual TLS is link authentication for a node with client auth; a shared name passes", async () => {
  const certs = await makeLinkCerts(1);
  try {
    // Client auth with mutual TLS on the link and no secret: past the checks, to etcd.
    const tls = await serve([...CLUSTER, ...linkTlsArgs(certs, 1), "--auth-token", "tok-123"]);
    assert.equal(tls.code, 2, tls.err);
    assert.match(tls.err, /cannot reach etcd at http:\/\/127\.0\.0\.1:9/);
    // Without it, the refusal names both ways.
    const none = await serve([...CLUSTER, "--auth-token", "tok-123"]);
    assert.match(none.err, /set --cluster-secret-file <file> \(or RELAYR_CLUSTER_SECRET\)/);
    assert.match(
      none.err,
      /or mutual TLS \(--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca\)/,
    );
    // A certificate without the address, but with the name given: past the checks.
    const named = await serve([...CLUSTER, "--cluster-tls-cert", certs.misnamed.cert].concat(
      ["--cluster-tls-key", certs.misnamed.key, "--cluster-tls-ca", certs.ca],
      ["--cluster-tls-server-name", "elsewhere.example"],
    ));
    assert.equal(named.code, 2, named.err);
    assert.match(named.err, /cannot reach etcd/);
  } finally {
    certs.remove();
  }
});
