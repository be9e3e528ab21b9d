/**
 * The `relayr` client subcommands as real child processes (`deno run -A
 * main.ts <command>`) against a broker child process: output, stderr and
 * exit codes.
 */
import assert from "node:assert/strict";
import { connect, type StatusEvent } from "../src/client/mod.ts";
import { ackGroups } from "../src/client/sub_lines.ts";
import { ACK_IDS_MAX, CONTROL_LINE_BYTES_MAX } from "../src/config/mod.ts";
import { BrokerProcess, freePort, relayr, type Run } from "./client_helpers.ts";
import { ownStderr } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A destination with a wildcard outside quotes: `relayr sub topic:events.>` redirects to a file. */
const UNQUOTED_WILDCARD = /(^|\s)(topic|queue):[^\s'"<]*[>*]/m; // not a <placeholder>

/** Every error is one line on stderr, without a stack trace. */
function assertOneLineError(r: Run, pattern: RegExp): void {
  const lines = ownStderr(r.stderr).split("\n");
  assert.equal(lines.length, 1, `stderr: ${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

Deno.test("relayr client subcommands", async (t) => {
  const httpPort = freePort();
  const broker = await BrokerProcess.start([
    "--http-port",
    String(httpPort),
    "--http-host",
    "127.0.0.1",
    "--no-grpc",
  ]);
  const s = ["-s", broker.address];
  try {
    await t.step("--help on every subcommand", async () => {
      const runs = await Promise.all(
        ["pub", "sub", "request", "reply", "declare", "bind", "unbind", "stats", "bench"].map((c) =>
          relayr([c, "--help"])
        ),
      );
      for (
        const [i, c] of [
          "pub",
          "sub",
          "request",
          "reply",
          "declare",
          "bind",
          "unbind",
          "stats",
          "bench",
        ].entries()
      ) {
        assert.equal(runs[i].code, 0, c);
        assert.match(runs[i].stdout, new RegExp(`^Usage: relayr ${c} `), c);
        assert.match(runs[i].stdout, /--server/);
        // A wildcard destination left unquoted in an example: the shell redirects at ">".
        assert.doesNotMatch(runs[i].stdout, UNQUOTED_WILDCARD, c);
      }
    });

    await t.step("usage errors exit 2 with one line", async () => {
      const runs = await Promise.all([
        relayr(["pub"]),
        relayr(["pub", "--bogus", "topic:a", "x"]),
        relayr(["sub", "topic:a", "--count", "x"]),
        relayr(["pub", "topic:a", "x", "--priority", "12"]),
        relayr(["request", "queue:a"]),
        relayr(["reply", "queue:a"]),
        relayr(["reply", "queue:a", "x", "--count", "0"]),
        relayr(["bench", "--subs", "1", "--queue", "1"]),
        relayr(["declare", "topic:a"]),
        relayr(["declare", "topic:a", "--retain-messages", "0"]),
        relayr(["sub", "topic:a", "--start", "last"]),
        relayr(["sub", "topic:a", "--forget"]),
      ]);
      for (const r of runs) {
        assert.equal(r.code, 2, r.stderr);
        assertOneLineError(r, /^relayr \w+: .+ \(see relayr \w+ --help\)$/);
      }
    });

    await t.step(
      "declare range-checks its flags itself, with the range --help states",
      async () => {
        const [help, big, abc, age] = await Promise.all([
          relayr(["declare", "--help"]),
          relayr(["declare", ...s, "topic:cli.big", "--retain-messages", "20000000"]),
          relayr(["declare", ...s, "topic:cli.big", "--retain-messages", "abc"]),
          relayr(["declare", ...s, "topic:cli.big", "--retain-age", "2592000001"]),
        ]);
        const range = help.stdout.match(/--retain-messages <n> most messages kept \((1)-(\d+)\)/);
        assert.ok(range, help.stdout);
        for (const r of [big, abc]) {
          assert.equal(r.code, 2, r.stderr);
          assertOneLineError(
            r,
            new RegExp(
              `^relayr declare: --retain-messages must be an integer from 1 to ${range[2]}, `,
            ),
          );
          assert.doesNotMatch(r.stderr, /retainMessages/);
        }
        assert.equal(age.code, 2, age.stderr);
        assertOneLineError(
          age,
          /^relayr declare: --retain-age must be an integer from 1 to 2592000000, /,
        );
      },
    );

    await t.step(
      "declare queue: OK, same again, conflict; pub --dedup-id and --delay",
      async () => {
        const ok = await relayr([
          "declare",
          ...s,
          "queue:cli.jobs",
          "--max-messages",
          "5",
          "--dlq",
          "none",
        ]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(ok.stdout.trim(), "declared queue:cli.jobs");
        const same = await relayr([
          "declare",
          ...s,
          "queue:cli.jobs",
          "--dlq",
          "none",
          "--max-messages",
          "5",
        ]);
        assert.equal(same.code, 0, same.stderr);
        const other = await relayr(["declare", ...s, "queue:cli.jobs", "--max-messages", "6"]);
        assert.notEqual(other.code, 0);
        assertOneLineError(
          other,
          /DECLARE_CONFLICT|declared with other settings: max_messages:5 dlq:none/,
        );
        const misuse = await relayr(["declare", ...s, "queue:cli.jobs", "--retain-age", "5"]);
        assert.equal(misuse.code, 2);
        assertOneLineError(misuse, /--retain-age is for topics/);
        const [a, b] = [
          await relayr(["pub", ...s, "queue:cli.jobs", "x", "--dedup-id", "d-1"]),
          await relayr(["pub", ...s, "queue:cli.jobs", "x", "--dedup-id", "d-1"]),
        ];
        assert.equal(a.code, 0, a.stderr);
        assert.match(a.stdout.trim(), /^\d+$/);
        assert.equal(b.stdout, a.stdout, "the duplicate prints the first id");
        const d = await relayr(["pub", ...s, "queue:cli.jobs", "y", "--delay", "60000"]);
        assert.equal(d.code, 0, d.stderr);
        const both = await relayr([
          "pub",
          ...s,
          "queue:cli.jobs",
          "y",
          "--delay",
          "5",
          "--deliver-at",
          "5",
        ]);
        assert.equal(both.code, 2);
        assertOneLineError(both, /--delay or --deliver-at, not both/);
        const c = await connect(broker.address, { reconnect: false });
        try {
          const st = await (await fetch(`http://127.0.0.1:${httpPort}/api/stats`)).json();
          const q = JSON.stringify(st);
          assert.match(q, /"scheduled_msgs":1/);
        } finally {
          await c.close();
        }
      },
    );

    await t.step("pub --codec msgpack/json, sub --codec decodes by content type", async () => {
      const q = "queue:cli.codec";
      const mp = await relayr(["pub", ...s, q, '{"a":[1,2],"b":"é"}', "--codec", "msgpack"]);
      assert.equal(mp.code, 0, mp.stderr);
      const js = await relayr(["pub", ...s, q, "-", "--codec", "json"], { stdin: '{"n":1}\n' });
      assert.equal(js.code, 0, js.stderr);
      const bad = await relayr(["pub", ...s, q, "not json", "--codec", "msgpack"]);
      assert.equal(bad.code, 2);
      assertOneLineError(bad, /--codec msgpack takes JSON data/);
      const raw = await relayr(["sub", ...s, q, "--count", "2", "--codec", "auto", "--raw"]);
      assert.equal(raw.code, 0, raw.stderr);
      assert.equal(raw.stdout, '{"a":[1,2],"b":"é"}\n{"n":1}\n');
      await relayr(["pub", ...s, q, '{"c":3}', "--codec", "msgpack"]);
      const json = await relayr(["sub", ...s, q, "--count", "1", "--codec", "auto", "--json"]);
      const line = JSON.parse(json.stdout);
      assert.deepEqual([line.content_type, line.value], ["application/msgpack", { c: 3 }]);
    });

    await t.step("a negative number for a numeric flag names the flag and its range", async () => {
      const runs = await Promise.all([
        relayr(["sub", ...s, "topic:a", "--count", "-5"]),
        relayr(["sub", ...s, "topic:a", "-n", "-5"]),
        relayr(["pub", ...s, "topic:a", "x", "--priority", "-1"]),
        relayr(["declare", ...s, "topic:a", "--retain-bytes", "-10"]),
      ]);
      const flags = ["count", "count", "priority", "retain-bytes"];
      for (const [i, r] of runs.entries()) {
        assert.equal(r.code, 2, r.stderr);
        assertOneLineError(
          r,
          new RegExp(
            `^relayr \\w+: --${flags[i]} must be an integer from \\d+ to \\d+, got "-\\d+"`,
          ),
        );
        assert.doesNotMatch(r.stderr, /ambiguous/);
      }
    });

    await t.step("an unreachable broker exits 3", async () => {
      const r = await relayr(["pub", "topic:a", "x", "-s", `127.0.0.1:${freePort()}`]);
      assert.equal(r.code, 3);
      assertOneLineError(r, /^relayr pub: Cannot connect to 127\.0\.0\.1:\d+: /);
    });

    await t.step("RELAYR_SERVER sets the broker; a broker error exits 1", async () => {
      const r = await relayr(["pub", "topic:a.*", "x"], { env: { RELAYR_SERVER: broker.address } });
      assert.equal(r.code, 1);
      assertOneLineError(r, /^relayr pub: BAD_DESTINATION: /);
    });

    await t.step("pub with every option, then sub --json --count", async () => {
      const pub = await relayr([
        "pub",
        ...s,
        "queue:cli.orders",
        '{"order_id":"12345"}',
        "-H",
        "Trace-Id: abc",
        "--priority",
        "5",
        "--ttl",
        "60000",
        "--correlation-id",
        "c1",
        "--reply-to",
        "topic:replies",
        "--content-type",
        "application/json",
        "--count",
        "2",
      ]);
      assert.equal(pub.code, 0, pub.stderr);
      const ids = pub.stdout.trim().split("\n");
      assert.equal(ids.length, 2);
      for (const id of ids) assert.match(id, /^\d+$/);
      const sub = await relayr(["sub", ...s, "queue:cli.orders", "--count", "2", "--json"]);
      assert.equal(sub.code, 0, sub.stderr);
      const msgs = sub.stdout.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(msgs.map((m) => m.id), ids);
      assert.deepEqual(msgs[0], {
        dest: "queue:cli.orders",
        id: ids[0],
        sub_id: msgs[0].sub_id,
        delivery: 1,
        priority: 5,
        ttl: 60000,
        correlation_id: "c1",
        reply_to: "topic:replies",
        content_type: "application/json",
        headers: { "Trace-Id": "abc" },
        body: '{"order_id":"12345"}',
      });
      // sub acked them: the queue is empty now.
      const again = await relayr([
        "sub",
        ...s,
        "queue:cli.orders",
        "--count",
        "1",
        "--timeout",
        "300",
      ]);
      assert.equal(again.code, 4);
      assertOneLineError(again, /timed out after 300 ms with 0 of 1 messages/);
    });

    await t.step(
      "pub - publishes one message per stdin line; sub --raw prints bodies",
      async () => {
        const pub = await relayr(["pub", ...s, "queue:cli.lines", "-"], {
          stdin: "one\ntwo\r\nthree",
        });
        assert.equal(pub.code, 0, pub.stderr);
        assert.equal(pub.stdout.trim().split("\n").length, 3);
        const sub = await relayr(["sub", ...s, "queue:cli.lines", "--count", "3", "--raw"]);
        assert.equal(sub.code, 0, sub.stderr);
        assert.equal(sub.stdout, "one\ntwo\nthree\n");
      },
    );

    await t.step("sub prints the human format; --no-ack leaves queue messages", async () => {
      await relayr(["pub", ...s, "queue:cli.peek", "hello", "-H", "K: v"]);
      const peek = await relayr(["sub", ...s, "queue:cli.peek", "--count", "1", "--no-ack"]);
      assert.equal(peek.code, 0, peek.stderr);
      assert.match(peek.stdout, /^\[#1\] queue:cli\.peek msg_id:\d+\nK: v\nhello\n/);
      const take = await relayr(["sub", ...s, "queue:cli.peek", "--count", "1", "--raw"]);
      assert.equal(take.stdout, "hello\n");
    });

    await t.step("declare, then sub --durable resumes and --start replays", async () => {
      const t = "topic:cli.durable";
      const decl = await relayr([
        "declare",
        ...s,
        t,
        "--retain-messages",
        "100",
        "--retain-age",
        "60000",
      ]);
      assert.equal(decl.code, 0, decl.stderr);
      assert.equal(decl.stdout, `declared ${t}\n`);
      const queue = await relayr(["declare", ...s, "queue:cli.q", "--retain-bytes", "10"]);
      assert.equal(queue.code, 2);
      assertOneLineError(queue, /^relayr declare: --retain-bytes is for topics/);
      const pub = await relayr(["pub", ...s, t, "-"], { stdin: "one\ntwo\nthree" });
      assert.equal(pub.code, 0, pub.stderr);
      const ids = pub.stdout.trim().split("\n");
      const durable = ["sub", ...s, t, "--durable", "cli", "--raw", "--count", "1"];
      const first = await relayr([...durable, "--start", "first"]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, "one\n");
      // Resumes after what it acked; --start is ignored by then.
      const second = await relayr([...durable, "--start", "new"]);
      assert.equal(second.stdout, "two\n");
      const replay = await relayr([
        "sub",
        ...s,
        t,
        "--start",
        `id:${ids[1]}`,
        "--count",
        "2",
        "--json",
      ]);
      assert.equal(replay.code, 0, replay.stderr);
      assert.deepEqual(replay.stdout.trim().split("\n").map((l) => JSON.parse(l).id), ids.slice(1));
      // --forget deletes the durable: the next one starts afresh at --start first.
      const forget = await relayr([...durable, "--forget"]);
      assert.equal(forget.stdout, "three\n");
      const fresh = await relayr([...durable, "--start", "first"]);
      assert.equal(fresh.stdout, "one\n");
      const undeclared = await relayr(["sub", ...s, "topic:cli.none", "--durable", "x"]);
      assert.equal(undeclared.code, 1);
      assertOneLineError(undeclared, /^relayr sub: NOT_DECLARED: /);
    });

    await t.step("bind with --filter, sub --filter, unbind", async () => {
      const bind = await relayr([
        "bind",
        ...s,
        "topic:cli.bound.*",
        "queue:cli.bound",
        "--filter",
        "priority >= 5",
      ]);
      assert.equal(bind.code, 0, bind.stderr);
      assert.equal(bind.stdout, "bound topic:cli.bound.* to queue:cli.bound where priority >= 5\n");
      const bad = await relayr(["bind", ...s, "topic:cli.b", "queue:cli.b", "--filter", "x ="]);
      assert.equal(bad.code, 1);
      assertOneLineError(bad, /^relayr bind: BAD_FILTER: at 3: /);
      for (const p of ["1", "7", "9"]) {
        const r = await relayr(["pub", ...s, "topic:cli.bound.x", `p${p}`, "--priority", p]);
        assert.equal(r.code, 0, r.stderr);
      }
      const got = await relayr([
        "sub",
        ...s,
        "queue:cli.bound",
        "--count",
        "1",
        "--raw",
        "--filter",
        "priority < 9",
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stdout, "p7\n");
      const unbind = await relayr(["unbind", ...s, "topic:cli.bound.*", "queue:cli.bound"]);
      assert.equal(unbind.code, 0, unbind.stderr);
      assert.equal(unbind.stdout, "unbound topic:cli.bound.* from queue:cli.bound\n");
    });

    await t.step("request prints the reply; no reply exits 4", async () => {
      const responder = await connect(broker.address);
      try {
        await responder.subscribe("queue:cli.rpc", {
          callback: async (m) => {
            await m.respond(`echo:${m.text()}`);
            await m.ack();
          },
        });
        const r = await relayr(["request", ...s, "queue:cli.rpc", "hi"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "echo:hi\n");
        const j = await relayr(["request", ...s, "queue:cli.rpc", "hi", "--json"]);
        assert.equal(JSON.parse(j.stdout).body, "echo:hi");
      } finally {
        await responder.close();
      }
      const none = await relayr(["request", ...s, "topic:cli.nobody", "x", "--timeout", "200"]);
      assert.equal(none.code, 4);
      assertOneLineError(none, /^relayr request: No reply .* within 200 ms$/);
    });

    await t.step("reply answers requests with {{body}} and exits after --count", async () => {
      const q = "queue:cli.reply";
      // Not a request (no reply_to): acked, noted on stderr, not counted.
      const plain = await relayr(["pub", ...s, q, "no reply wanted", "-q"]);
      assert.equal(plain.code, 0, plain.stderr);
      // A queue keeps the requests until the responder subscribes, so there is no race.
      const responder = relayr(["reply", ...s, q, "echo: {{body}} ({{body}})", "--count", "2"]);
      const first = await relayr(["request", ...s, q, "hi", "--json"]);
      assert.equal(first.code, 0, first.stderr);
      const reply = JSON.parse(first.stdout);
      assert.equal(reply.body, "echo: hi (hi)");
      assert.match(reply.correlation_id, /.+/, "the request's correlation id comes back");
      const second = await relayr(["request", ...s, q, "again"]);
      assert.equal(second.stdout, "echo: again (again)\n");
      const done = await responder; // exits by itself after 2 answers
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stderr, /^relayr reply: msg_id:\d+ on queue:cli\.reply has no reply_to/);
      const lines = done.stdout.trim().split("\n");
      assert.equal(lines.length, 2, done.stdout);
      assert.match(lines[0], /^\[#1\] msg_id:\d+ answered to \S+ msg_id:\d+$/);
      // Both requests were acked: the queue is empty.
      const left = await relayr(["sub", ...s, q, "--count", "1", "--timeout", "300"]);
      assert.equal(left.code, 4, left.stdout);
    });

    await t.step(
      "the SDK's batched ACKs of many long ids stay within the control line",
      async () => {
        const q = "queue:cli.acks";
        const n = 300;
        const client = await connect(broker.address);
        const errors: StatusEvent[] = [];
        (async () => {
          for await (const e of client.status()) if (e.type === "error") errors.push(e);
        })();
        try {
          await Promise.all(Array.from({ length: n }, (_, i) => client.publish(q, `m${i}`)));
          const sub = await client.subscribe(q, { prefetch: n });
          // Not `break` out of a for await: that unsubscribes, and the messages go back.
          const it = sub[Symbol.asyncIterator]();
          const msgs = [];
          while (msgs.length < n) msgs.push((await it.next()).value!);
          // Ids of 16 digits: ACK_IDS_MAX of them on one line would be over 6000 bytes.
          assert.ok(msgs[0].id.length >= 16, msgs[0].id);
          for (const m of msgs) m.ack(); // one tick: one batch
          await client.flush();
          assert.deepEqual(errors, []);
        } finally {
          await client.close();
        }
        const left = await relayr(["sub", ...s, q, "--count", "1", "--timeout", "300"]);
        assert.equal(left.code, 4, left.stdout);
      },
    );

    await t.step("stats prints JSON; an unreachable endpoint exits 3", async () => {
      const r = await relayr(["stats", "--http", `127.0.0.1:${httpPort}`, "--compact"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(typeof JSON.parse(r.stdout), "object");
      const gone = await relayr(["stats", "--http", `127.0.0.1:${freePort()}`]);
      assert.equal(gone.code, 3);
      assertOneLineError(
        gone,
        /^relayr stats: cannot reach monitoring at http:\/\/127\.0\.0\.1:\d+\/api\/stats: /,
      );
    });

    await t.step("bench: topic and queue runs complete and report rates", async () => {
      const [topic, queue] = await Promise.all([
        relayr([
          "bench",
          ...s,
          "--pubs",
          "2",
          "--subs",
          "2",
          "--msgs",
          "4000",
          "--size",
          "64",
          "--json",
        ]),
        relayr(["bench", ...s, "--pubs", "1", "--queue", "2", "--msgs", "4000", "--json"]),
      ]);
      for (const r of [topic, queue]) {
        assert.equal(r.code, 0, r.stderr);
        const result = JSON.parse(r.stdout);
        assert.equal(result.complete, true);
        assert.equal(result.pub.msgs, 4000);
        assert.ok(result.pub.msgsPerSec > 0);
        assert.ok(result.latencyMs.p99 >= result.latencyMs.p50);
        assert.ok(result.publishAckMs.p999 >= result.publishAckMs.p90);
      }
      assert.equal(JSON.parse(topic.stdout).sub.msgs, 8000);
      assert.equal(JSON.parse(queue.stdout).sub.msgs, 4000);
      const human = await relayr(["bench", ...s, "--msgs", "500", "--subs", "1"]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /^Pub: [\d,]+ msgs\/s ~ [\d.]+ MB\/s/m);
      assert.match(human.stdout, /^Latency, publish to delivery: p50 [\d.]+ ms {2}p90 .* p99\.9 /m);
    });
  } finally {
    await broker.stop();
  }
});

Deno.test("relayr serve: config errors are one line and exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relayr-cli-test-" });
  try {
    const [both, negative, short] = await Promise.all([
      relayr(["serve", "--memory", "--data-dir", dir, "--port", "0", "--no-http", "--no-grpc"]),
      relayr(["serve", "--memory", "--max-payload", "-5", "--port", "0", "--no-http", "--no-grpc"]),
      relayr(["serve", "--memory", "--port", "-1", "--no-http", "--no-grpc"]),
    ]);
    assert.equal(both.code, 2, both.stderr);
    assertOneLineError(both, /^relayr: --memory and --data-dir exclude each other$/);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written to the data dir");
    assert.equal(negative.code, 2, negative.stderr);
    assertOneLineError(
      negative,
      /^relayr: --max-payload must be an integer from 1 to \d+, got "-5"$/,
    );
    assert.equal(short.code, 2, short.stderr);
    assertOneLineError(short, /^relayr: --port must be an integer from 0 to 65535, got "-1"$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("docs: the ACK rule, imports and shell quoting agree with the code", async () => {
  const read = (p: string) => Deno.readTextFile(`${ROOT}${p}`);
  const [protocol, client, readme] = await Promise.all(
    ["docs/PROTOCOL.md", "docs/CLIENT.md", "README.md"].map(read),
  );
  const section = (text: string, from: string, to: string) =>
    text.slice(text.indexOf(from), text.indexOf(to, text.indexOf(from)));
  // The rule is stated once, in PROTOCOL.md, with the server's numbers...
  const ack = section(protocol, "\n### ACK\n", "\n### NACK\n");
  assert.match(ack, new RegExp(`at most ${ACK_IDS_MAX} ids`));
  assert.match(ack, new RegExp(`${CONTROL_LINE_BYTES_MAX} bytes`));
  // ...and CLIENT.md points there instead of giving numbers of its own.
  const acks = section(client, "\n### Acks\n", "\n## ");
  assert.match(acks, /\(PROTOCOL\.md#ack\)/);
  assert.doesNotMatch(acks, /\d+ ids/);
  // The SDK batches by both limits: 200 ids of 16 digits (~4800 bytes) are two lines.
  const ids = Array.from({ length: 200 }, (_, i) => String(1_830_000_000_000_000 + i));
  const groups = ackGroups(ids);
  assert.ok(groups.length > 1);
  for (const g of groups) {
    assert.ok(g.length <= ACK_IDS_MAX);
    assert.ok(`ACK msg_id:${g.join(" msg_id:")}`.length <= CONTROL_LINE_BYTES_MAX);
  }
  for (const [name, text] of [["CLIENT.md", client], ["README.md", readme]]) {
    // Bun resolves no package name for the client (package.json has no exports): examples import the path.
    assert.doesNotMatch(text, /^import .* from "(@relayr\/)?relayr\//m, name);
    for (const block of text.matchAll(/```sh\n([^]*?)```/g)) {
      assert.doesNotMatch(block[1], UNQUOTED_WILDCARD, name);
    }
  }
});
