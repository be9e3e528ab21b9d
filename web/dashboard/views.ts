/**
 * The list pages: queues, topics, connections and recent closes, with their
 * actions. Every action is one call of the HTTP API, confirmed first when it
 * destroys something, and the table reloads to show its effect.
 *
 * @module
 */
import type {
  PeekedMessage,
  QueueStats,
  SubscriptionStats,
  TopicStats,
} from "../../src/broker/mod.ts";
import type { ClosedConnectionStats, ConnectionStats } from "../../src/server/mod.ts";
import { act, AuthRequired, getJson, type ListPage, seg } from "./api.ts";
import { type Column, VirtualTable } from "./table.ts";
import { age, bytes, confirmAction, full, h, num, openDialog, toast } from "./ui.ts";

// The rows are the broker's own stats types (type imports, erased by the bundler).
/** A queue row of `/api/queues`: its stats and its DLQ's depth. */
type QueueRow = QueueStats & { dlq_depth: number | null };
type SubRow = SubscriptionStats;
type ConnRow = ConnectionStats;
type TopicRow = TopicStats;
type ClosedRow = ClosedConnectionStats;
type Peeked = PeekedMessage;

/** A page with a title, a filter and a table, refreshed every `REFRESH_MS` while shown. */
export interface View {
  el: HTMLElement;
  refresh(): Promise<void>;
}

const NUM = "minmax(72px, 1fr)";
/** The name column: `--name-min` is narrower on a phone, where the table scrolls sideways. */
const NAME = "minmax(var(--name-min), 2.2fr)";

/** A column of a plain count, right-aligned and sortable. */
function count<T>(key: keyof T & string, label: string, width = NUM): Column<T> {
  return { key, label, num: true, width, render: (r) => num(r[key] as number) };
}

/** The toolbar over a table: title, match count, filter box. */
function toolbar<T>(title: string, table: VirtualTable<T>, placeholder: string): HTMLElement {
  const count = h("span", { class: "count" }, "");
  table.onCount((m, t) => count.textContent = m === t ? full(t) : `${full(m)} of ${full(t)}`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const input = h("input", { type: "search", placeholder, "aria-label": placeholder });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => table.filter(input.value.trim()), 150);
  });
  return h("div", { class: "toolbar" }, h("h2", {}, title), count, input);
}

/** Runs an action, says how it went, reloads the view. */
async function run(view: { refresh(): Promise<void> }, f: () => Promise<string>): Promise<void> {
  try {
    toast(await f());
  } catch (e) {
    toast(
      e instanceof AuthRequired
        ? "Sign in again: the credential was refused"
        : (e as Error).message,
      true,
    );
  }
  await view.refresh().catch(() => {});
}

/** Queues: depth, flow and dead letters per queue; peek, purge, replay, delete. */
export function queuesView(): View {
  const rates = new Map<
    string,
    { t: number; published: number; delivered: number; in: number; out: number }
  >();
  const rate = (r: QueueRow) => rates.get(r.name);
  const columns: Column<QueueRow>[] = [
    {
      key: "name",
      label: "Queue",
      width: NAME,
      cls: "name",
      render: (r) => r.name.slice(6),
    },
    { key: "depth", label: "Depth", num: true, width: NUM, render: (r) => hot(r.depth, 10_000) },
    count("inflight", "In flight"),
    {
      key: "consumers",
      label: "Consumers",
      num: true,
      width: "minmax(92px, 1fr)",
      render: (r) =>
        r.consumers === 0 && r.depth > 0 ? h("span", { class: "hot" }, "0") : num(r.consumers),
    },
    {
      key: "published",
      label: "In / s",
      num: true,
      width: NUM,
      render: (r) => num(rate(r)?.in ?? null),
    },
    {
      key: "delivered",
      label: "Out / s",
      num: true,
      width: NUM,
      render: (r) => num(rate(r)?.out ?? null),
    },
    count("redelivered", "Redelivered", "minmax(100px, 1fr)"),
    count("expired", "Expired"),
    count("dead_lettered", "Dead-lettered", "minmax(108px, 1fr)"),
    {
      key: "dlq_depth",
      label: "DLQ depth",
      num: true,
      width: "minmax(88px, 1fr)",
      render: (r) =>
        r.dlq_depth === null
          ? h("span", { class: "muted" }, "—")
          : h("span", { class: r.dlq_depth > 0 ? "alarm" : "" }, num(r.dlq_depth)),
    },
    {
      key: "actions",
      label: "",
      sortable: false,
      width: "max-content",
      render: (r) => queueActions(r),
    },
  ];
  const table = new VirtualTable<QueueRow>({
    kind: "queues",
    columns,
    sort: "name",
    empty: "No queues match. A queue appears with its first publish or consumer.",
    onPage: (p: ListPage<QueueRow>) => {
      const now = performance.now();
      for (const r of p.list) {
        const prev = rates.get(r.name);
        const dt = prev === undefined ? 0 : (now - prev.t) / 1000;
        rates.set(r.name, {
          t: now,
          published: r.published,
          delivered: r.delivered,
          in: dt > 0.5 ? Math.max(0, (r.published - prev!.published) / dt) : prev?.in ?? 0,
          out: dt > 0.5 ? Math.max(0, (r.delivered - prev!.delivered) / dt) : prev?.out ?? 0,
        });
      }
    },
  });
  const view = {
    el: h("div", {}, toolbar("Queues", table, "Filter queues"), table.el),
    refresh: () => table.refresh(),
  };

  function queueActions(r: QueueRow): HTMLElement {
    const name = r.name;
    const isDlq = name.endsWith(".dlq");
    return h(
      "div",
      { class: "actions", "data-row": name },
      h("button", {
        onclick: () => peek(name),
        title: "Show the next messages without taking them",
      }, "Peek"),
      h("button", {
        class: "danger",
        disabled: r.depth + r.delayed === 0,
        onclick: async () => {
          if (
            !await confirmAction(
              `Purge ${name}?`,
              `Removes ${num(r.depth + r.delayed)} waiting messages for good. The ${
                num(r.inflight)
              } in flight stay with their consumers.`,
              "Purge",
            )
          ) return;
          await run(view, async () => {
            const res = await act<{ purged: number }>("POST", `/api/queues/${seg(name)}/purge`);
            return `Purged ${num(res.purged)} messages from ${name}`;
          });
        },
      }, "Purge"),
      // Always there (disabled when there is nothing to replay): every row's buttons line up.
      h("button", {
        disabled: isDlq ? r.depth === 0 : (r.dlq_depth ?? 0) === 0,
        title: "Replay the dead-letter queue: move its messages back to their queue",
        onclick: async () => {
          const target = isDlq ? name.slice(0, -4) : name;
          if (
            !await confirmAction(
              `Replay dead letters of ${target}?`,
              `Moves the waiting messages of ${target}.dlq back to ${target}, oldest first, as new deliveries.`,
              "Replay",
            )
          ) return;
          await run(view, async () => {
            const res = await act<{ moved: number; left: number }>(
              "POST",
              `/api/queues/${seg(target)}/replay-dlq`,
            );
            return `Moved ${num(res.moved)} back to ${target}${
              res.left > 0 ? `; ${num(res.left)} left (queue full)` : ""
            }`;
          });
        },
      }, "Replay"),
      h("button", {
        class: "danger",
        disabled: r.depth + r.inflight + r.delayed > 0 || r.consumers > 0,
        title: "Only an empty queue without consumers",
        onclick: async () => {
          if (
            !await confirmAction(
              `Delete ${name}?`,
              "The queue is empty and has no consumers. It comes back with the next publish to it.",
              "Delete",
            )
          ) return;
          await run(view, async () => {
            await act("DELETE", `/api/queues/${seg(name)}`);
            return `Deleted ${name}`;
          });
        },
      }, "Delete"),
    );
  }
  return view;
}

/** Shows the next messages of a queue in a dialog. */
async function peek(name: string): Promise<void> {
  let res: { messages: Peeked[] };
  try {
    res = await getJson(`/api/queues/${seg(name)}/peek?n=20`);
  } catch (e) {
    toast((e as Error).message, true);
    return;
  }
  const body = res.messages.length === 0
    ? h("p", { class: "muted" }, "No message is waiting (messages in flight are not shown).")
    : h(
      "div",
      { id: "peek" },
      ...res.messages.map((m, i) =>
        h(
          "div",
          { class: "msg" },
          h(
            "div",
            { class: "meta" },
            ...[
              h("strong", {}, `#${i + 1}`),
              `msg_id ${m.id}`,
              `priority ${m.priority}`,
              m.deliveries > 0
                ? h("span", { class: "hot" }, `${m.deliveries} deliveries`)
                : "never delivered",
              bytes(m.size),
              new Date(m.accepted_at).toLocaleString(),
              m.expires_at ? `expires ${new Date(m.expires_at).toLocaleTimeString()}` : null,
              m.correlation_id ? `correlation ${m.correlation_id}` : null,
              m.content_type,
            ].map((x) => typeof x === "string" ? h("span", {}, x) : x),
          ),
          m.headers.length > 0
            ? h(
              "div",
              { class: "meta" },
              ...m.headers.map(([k, v]) => h("span", {}, h("strong", {}, `${k}: `), v)),
            )
            : null,
          h(
            "pre",
            {},
            m.preview_encoding === "base64" ? `base64: ${m.body_preview}` : m.body_preview,
            m.truncated ? `\n… ${bytes(m.body_bytes)} in all` : "",
          ),
        )
      ),
    );
  await openDialog(`Next in ${name}`, body, [{ label: "Close", value: "close", class: "primary" }]);
}

/** Topics: subscribers, lag, retention, durables; a topic's details list its durables to delete. */
export function topicsView(): View {
  const columns: Column<TopicRow>[] = [
    {
      key: "name",
      label: "Topic",
      width: NAME,
      cls: "name",
      render: (r) => r.name.slice(6),
    },
    count("subscribers", "Subscribers", "minmax(96px, 1fr)"),
    {
      key: "max_lag_msgs",
      label: "Max lag",
      num: true,
      width: NUM,
      render: (r) => hot(r.max_lag_msgs, 1000),
    },
    count("retained", "Retained"),
    {
      key: "retention",
      label: "Retention",
      width: "minmax(150px, 1.4fr)",
      render: (r) => retention(r),
    },
    count("published", "Published", "minmax(84px, 1fr)"),
    count("delivered", "Delivered", "minmax(84px, 1fr)"),
    count("dropped", "Dropped"),
    {
      key: "durables",
      label: "Durables",
      num: true,
      width: "minmax(80px, 1fr)",
      render: (r) => num(r.durables.length),
    },
    {
      key: "actions",
      label: "",
      sortable: false,
      width: "max-content",
      render: (r) =>
        h(
          "div",
          { class: "actions", "data-row": r.name },
          h("button", { onclick: () => topicDetails(r, view) }, "Details"),
        ),
    },
  ];
  const table = new VirtualTable<TopicRow>({
    kind: "topics",
    columns,
    sort: "name",
    empty: "No topics match. A topic appears with its first subscriber or declaration.",
  });
  const view = {
    el: h("div", {}, toolbar("Topics", table, "Filter topics"), table.el),
    refresh: () => table.refresh(),
  };
  return view;
}

function retention(r: TopicRow): Node | string {
  if (r.retention === null) return h("span", { class: "muted" }, "none");
  const x = r.retention;
  return `${num(x.messages)} msgs · ${bytes(x.bytes)}${
    x.age_ms > 0 ? ` · ${age(x.age_ms / 1000)}` : ""
  }`;
}

/** A topic's subscriptions (their lag) and durables (their positions), with delete. */
async function topicDetails(t: TopicRow, view: View): Promise<void> {
  let conns: ListPage<ConnRow>;
  try {
    conns = await getJson<ListPage<ConnRow>>(`/api/connections?limit=1000`);
  } catch (e) {
    toast((e as Error).message, true);
    return;
  }
  const subs = conns.list.flatMap((c) =>
    c.subscriptions.filter((s) => s.destination === t.name).map((s) => ({ c, s }))
  );
  const body = h(
    "div",
    {},
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "Retention"),
      h("dd", {}, retention(t)),
      h("dt", {}, "Retained"),
      h("dd", {}, `${num(t.retained)} messages`),
      h("dt", {}, "Published"),
      h("dd", {}, num(t.published)),
    ),
    h("h4", {}, `Subscriptions (${subs.length})`),
    subs.length === 0 ? h("p", { class: "muted" }, "None on this topic by its exact name.") : h(
      "table",
      { class: "mini" },
      h(
        "tr",
        {},
        h("th", {}, "Connection"),
        h("th", {}, "Sub"),
        h("th", {}, "Lag"),
        h("th", {}, "In flight"),
      ),
      ...subs.map(({ c, s }) =>
        h(
          "tr",
          {},
          h("td", {}, c.client_id ?? `#${c.id}`),
          h("td", {}, s.sid),
          h("td", {}, num(s.lag_msgs ?? 0)),
          h("td", {}, num(s.inflight)),
        )
      ),
    ),
    h("h4", {}, `Durables (${t.durables.length})`),
    t.durables.length === 0 ? h("p", { class: "muted" }, "No durable subscriptions.") : h(
      "table",
      { class: "mini", id: "durables" },
      h(
        "tr",
        {},
        h("th", {}, "Name"),
        h("th", {}, "Position"),
        h("th", {}, "Backlog"),
        h("th", {}, "State"),
        h("th", {}, ""),
      ),
      ...t.durables.map((d) =>
        h(
          "tr",
          {},
          h("td", {}, d.name),
          h("td", {}, String(d.position)),
          h("td", {}, num(d.backlog_msgs)),
          h(
            "td",
            {},
            h(
              "span",
              { class: d.connected ? "badge good" : "badge" },
              d.connected ? "connected" : "idle",
            ),
          ),
          h(
            "td",
            {},
            h("button", {
              class: "danger",
              value: `delete:${d.name}`,
              disabled: d.connected,
              title: d.connected ? "In use by a live subscription" : "Forget its position",
            }, "Delete"),
          ),
        )
      ),
    ),
  );
  const answer = await openDialog(t.name, body, [{
    label: "Close",
    value: "close",
    class: "primary",
  }]);
  if (!answer.startsWith("delete:")) return;
  const name = answer.slice(7);
  if (
    !await confirmAction(
      `Delete durable ${name}?`,
      `Its position in ${t.name} is forgotten; a new subscription with the name starts over.`,
      "Delete",
    )
  ) return;
  await run(view, async () => {
    await act("DELETE", `/api/topics/${seg(t.name)}/durables/${seg(name)}`);
    return `Deleted durable ${name} of ${t.name}`;
  });
}

/** Connections: who is connected, their traffic and subscriptions; close one. */
export function connectionsView(): View {
  const columns: Column<ConnRow>[] = [
    { key: "id", label: "Id", num: true, width: "minmax(56px, .5fr)", render: (r) => String(r.id) },
    {
      key: "client_id",
      label: "Client",
      width: NAME,
      cls: "name",
      render: (r) => r.client_id ?? r.name ?? h("span", { class: "muted" }, "—"),
    },
    {
      key: "user",
      label: "User",
      width: NUM,
      render: (r) => r.user ?? h("span", { class: "muted" }, "—"),
    },
    {
      key: "remote_addr",
      label: "Address",
      width: "minmax(140px, 1.2fr)",
      render: (r) => r.remote_addr,
    },
    {
      key: "tls",
      label: "TLS",
      width: "minmax(60px, .5fr)",
      render: (r) =>
        r.tls ? h("span", { class: "badge good" }, "TLS") : h("span", { class: "muted" }, "—"),
    },
    {
      key: "subscriptions",
      label: "Subs",
      num: true,
      width: NUM,
      render: (r) => subsCell(r.subscriptions),
    },
    {
      key: "pending_bytes",
      label: "Pending",
      num: true,
      width: NUM,
      render: (r) =>
        r.pending_bytes > 1 << 20
          ? h("span", { class: "hot" }, bytes(r.pending_bytes))
          : bytes(r.pending_bytes),
    },
    count("in_msgs", "Msgs in"),
    count("out_msgs", "Msgs out", "minmax(80px, 1fr)"),
    { key: "uptime_s", label: "Age", num: true, width: NUM, render: (r) => age(r.uptime_s) },
    {
      key: "actions",
      label: "",
      sortable: false,
      width: "max-content",
      render: (r) =>
        h(
          "div",
          { class: "actions", "data-row": String(r.id) },
          h("button", {
            class: "danger",
            onclick: async () => {
              const who = r.client_id ?? `connection ${r.id}`;
              if (
                !await confirmAction(
                  `Close ${who}?`,
                  `The client gets ERR ADMIN_CLOSED; its ${
                    num(r.subscriptions.reduce((a, s) => a + s.inflight, 0))
                  } unacked messages go back to their queues. A client that reconnects is let in again.`,
                  "Close connection",
                )
              ) return;
              await run(view, async () => {
                await act("POST", `/api/connections/${r.id}/close`);
                return `Closed ${who}`;
              });
            },
          }, "Close"),
        ),
    },
  ];
  const table = new VirtualTable<ConnRow>({
    kind: "connections",
    columns,
    sort: "id",
    empty: "No client is connected.",
  });
  const view = {
    el: h("div", {}, toolbar("Connections", table, "Filter by client, name, address"), table.el),
    refresh: () => table.refresh(),
  };
  return view;
}

function subsCell(subs: SubRow[]): Node | string {
  if (subs.length === 0) return "0";
  return h(
    "span",
    { title: subs.map((s) => `${s.sid}: ${s.destination}`).join("\n") },
    num(subs.length),
  );
}

const REASON_CLASS: Record<string, string> = {
  CLIENT_CLOSED: "",
  SERVER_SHUTDOWN: "",
  ADMIN_CLOSED: "warn",
  SLOW_CONSUMER: "bad",
  STALE_CONNECTION: "warn",
  INTERNAL_ERROR: "bad",
};

/** Recent closes: the server's ring of the last closed connections, newest first. */
export function closesView(): View {
  const grid = h("div", { class: "grid", role: "table" });
  grid.style.gridTemplateColumns =
    "minmax(48px,.4fr) minmax(var(--name-min),1.4fr) minmax(130px,1.1fr) max-content minmax(160px,2.4fr) minmax(64px,.6fr) minmax(64px,.6fr) minmax(84px,.8fr)";
  const count = h("span", { class: "count" }, "");
  const el = h(
    "div",
    {},
    h("div", { class: "toolbar" }, h("h2", {}, "Recent closes"), count),
    h("div", { class: "table panel" }, grid),
  );
  return {
    el,
    async refresh() {
      const s = await getJson<{ closed_connections: ClosedRow[] }>("/api/stats?limit=1&subs=false");
      const rows = s.closed_connections;
      count.textContent = `${rows.length} most recent`;
      const heads = [
        "Id",
        "Client",
        "Address",
        "Reason",
        "Detail",
        "Msgs in",
        "Msgs out",
        "Closed",
      ];
      const cells: Node[] = heads.map((x, i) =>
        h("div", {
          class: `th${i === 0 || i === 5 || i === 6 ? " num" : ""}`,
          role: "columnheader",
        }, x)
      );
      for (const r of rows) {
        const lived = (Date.parse(r.closed_at) - Date.parse(r.opened_at)) / 1000;
        cells.push(
          h("div", { class: "td num" }, String(r.id)),
          h("div", { class: "td name" }, r.client_id ?? r.name ?? "—"),
          h("div", { class: "td" }, r.remote_addr),
          h(
            "div",
            { class: "td" },
            h("span", { class: `badge ${REASON_CLASS[r.reason] ?? "bad"}` }, r.reason),
          ),
          h("div", { class: "td muted", title: r.detail }, r.detail || "—"),
          h("div", { class: "td num" }, num(r.in_msgs)),
          h("div", { class: "td num" }, num(r.out_msgs)),
          h(
            "div",
            { class: "td", title: `open for ${age(lived)}` },
            new Date(r.closed_at).toLocaleTimeString(),
          ),
        );
      }
      if (rows.length === 0) {
        cells.push(
          h(
            "div",
            { class: "empty", style: "grid-column: 1 / -1" },
            "No connection has closed yet.",
          ),
        );
      }
      grid.replaceChildren(...cells);
    },
  };
}

/** A number, highlighted when over `warn`. */
function hot(n: number, warn: number): Node | string {
  return n >= warn ? h("span", { class: "hot" }, num(n)) : num(n);
}
