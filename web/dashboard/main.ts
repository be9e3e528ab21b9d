/**
 * The Relayr console: a hash-routed page of five views over the broker's
 * HTTP API, with live figures from its stats stream. Plain TypeScript and
 * CSS, bundled by scripts/build_web.ts into the broker (no CDN: it works
 * offline). A framework would add more bytes than these views have lines.
 *
 * @module
 */
import { getJson } from "./api.ts";
import { Overview, type StatsDelta } from "./overview.ts";
import { h } from "./ui.ts";
import { closesView, connectionsView, queuesView, topicsView, type View } from "./views.ts";

/** How often a shown list reloads its visible rows. */
const REFRESH_MS = 2000;

const NAMES = ["overview", "queues", "topics", "connections", "closes"] as const;
type Name = typeof NAMES[number];

const overview = new Overview(byId("cards"), byId("charts"));
const views: Partial<Record<Name, View>> = {};
const makers: Record<Exclude<Name, "overview">, () => View> = {
  queues: queuesView,
  topics: topicsView,
  connections: connectionsView,
  closes: closesView,
};
let current: Name = "overview";
let timer: ReturnType<typeof setInterval> | undefined;

function byId(id: string): HTMLElement {
  return document.getElementById(id)!;
}

function show(): void {
  const want = location.hash.slice(1) as Name;
  current = NAMES.includes(want) ? want : "overview";
  for (const n of NAMES) byId(`view-${n}`).hidden = n !== current;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    if (a.dataset.view === current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  clearInterval(timer);
  if (current === "overview") return;
  let v = views[current];
  if (v === undefined) {
    v = views[current] = makers[current]();
    byId(`view-${current}`).append(v.el);
  }
  const view = v;
  const load = () => view.refresh().catch((e: Error) => live("off", `API: ${e.message}`));
  void load();
  timer = setInterval(load, REFRESH_MS);
}

function live(state: "on" | "off" | "", text: string): void {
  const el = byId("live");
  el.className = `live ${state}`;
  el.textContent = text;
}

function stream(): void {
  const es = new EventSource("/api/stream");
  es.onopen = () => live("on", "live");
  es.onmessage = (e) => {
    live("on", "live");
    overview.push(JSON.parse(e.data) as StatsDelta);
  };
  es.onerror = () =>
    live(
      es.readyState === EventSource.CLOSED ? "off" : "",
      es.readyState === EventSource.CLOSED ? "stream closed" : "reconnecting",
    );
}

async function console_(): Promise<void> {
  try {
    const c = await getJson<{ auth: string; version: string }>("/api/console");
    byId("server-info").textContent = `Relayr ${c.version}`;
    if (c.auth === "open") {
      const b = byId("banner");
      b.replaceChildren(
        h("strong", {}, "Open console. "),
        "No authentication is configured: anyone who can reach this port can purge queues and close connections. Bind the HTTP port to a private address.",
      );
      b.hidden = false;
    }
  } catch (e) {
    live("off", `API: ${(e as Error).message}`);
  }
}

addEventListener("hashchange", show);
show();
stream();
void console_();
