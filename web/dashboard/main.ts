/**
 * The Relayr console: a hash-routed page of five views over the broker's
 * HTTP API, with live figures from its stats stream. Plain TypeScript and
 * CSS, bundled by scripts/build_web.ts into the broker (no CDN: it works
 * offline). A framework would add more bytes than these views have lines.
 *
 * @module
 */
import { AuthRequired, credential, getJson, headers, setCredential } from "./api.ts";
import { Overview, type StatsDelta } from "./overview.ts";
import { h, openDialog } from "./ui.ts";
import { closesView, connectionsView, queuesView, topicsView, type View } from "./views.ts";

/** How often a shown list reloads its visible rows. */
const REFRESH_MS = 2000;
/** Wait before the stats stream is opened again after it ended. */
const RETRY_MS = 2000;

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
  const load = () =>
    view.refresh().catch((e: Error) =>
      e instanceof AuthRequired ? login() : live("off", `API: ${e.message}`)
    );
  void load();
  timer = setInterval(load, REFRESH_MS);
}

function live(state: "on" | "off" | "", text: string): void {
  const el = byId("live");
  el.className = `live ${state}`;
  el.textContent = text;
}

/**
 * Reads the stats stream with fetch rather than EventSource, which cannot
 * send an Authorization header. Reconnects after `RETRY_MS` while the page
 * is open; a 401 asks for a credential first.
 */
async function stream(): Promise<void> {
  for (;;) {
    try {
      const res = await fetch("/api/stream", { headers: headers() });
      if (res.status === 401) throw new AuthRequired("credential");
      if (!res.ok || res.body === null) throw new Error(`stream: ${res.status}`);
      live("on", "live");
      const decoder = new TextDecoder();
      let buf = "";
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const data = buf.slice(0, end).split("\n").find((l) => l.startsWith("data: "));
          buf = buf.slice(end + 2);
          if (data !== undefined) overview.push(JSON.parse(data.slice(6)) as StatsDelta);
        }
      }
      live("", "reconnecting");
    } catch (e) {
      if (e instanceof AuthRequired) await login();
      else live("off", "stream lost; retrying");
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

let asking: Promise<void> | undefined;

/** Asks for a token (or a user and password) until the broker takes one; one dialog at a time. */
function login(): Promise<void> {
  return asking ??= (async () => {
    let note = "This broker has authentication on. Actions need the admin role.";
    for (;;) {
      const token = h("input", {
        type: "password",
        name: "token",
        autocomplete: "current-password",
        "aria-label": "Token or password",
      });
      const user = h("input", {
        type: "text",
        name: "user",
        autocomplete: "username",
        "aria-label": "User (empty for the token)",
      });
      const body = h(
        "div",
        { class: "login" },
        h("p", {}, note),
        h(
          "label",
          {},
          h("span", {}, "User ", h("span", { class: "muted" }, "(empty for the auth token)")),
          user,
        ),
        h("label", {}, "Token or password", token),
      );
      const answer = await openDialog("Sign in to Relayr", body, [{
        label: "Sign in",
        value: "ok",
        class: "primary",
      }]);
      if (answer !== "ok") continue;
      setCredential(token.value, user.value.trim());
      try {
        await getJson("/api/queues?limit=1");
        asking = undefined;
        live("", "connecting");
        return;
      } catch (e) {
        note = e instanceof AuthRequired ? "That credential was refused." : (e as Error).message;
      }
    }
  })();
}

/** Asks the broker whether auth is on (an open call); says so when it is off. */
async function console_(): Promise<void> {
  try {
    const c = await getJson<{ auth: string; version: string | null }>("/api/console");
    // Signed in before the first call that needs it: no 401 ever reaches the console log.
    if (c.auth === "on" && credential() === null) await login();
    byId("server-info").textContent = c.version === null ? "Relayr" : `Relayr ${c.version}`;
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
await console_();
show();
void stream();
