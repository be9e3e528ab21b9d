/**
 * The console in a real browser: headless Chromium (Debian's, driven by
 * playwright-core) against a real broker. The page loads without console
 * errors; its charts move while a load runs; purge, peek, DLQ replay,
 * durable delete and close-connection work from the page and the tables show
 * it; 10,000 queues scroll and filter with a few dozen rows in the DOM.
 * Screenshots of every page (desktop and phone, dark and light) go to
 * test-output/console/ on every run.
 */
import assert from "node:assert/strict";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { brokerWithHttp, connected } from "./console_helpers.ts";

// The page's globals, for the functions that run in it: this file is type-checked with the
// rest of the suite, without the DOM library (which would clash with Deno's stream types).
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
  open?: boolean;
}
declare const document: {
  querySelectorAll(selector: string): Iterable<PageElement>;
  querySelector(selector: string): PageElement | null;
  getElementById(id: string): PageElement | null;
};
declare const location: { hash: string };
declare function requestAnimationFrame(f: (t: number) => void): number;

const CHROMIUM = "/usr/bin/chromium";
const OUT = new URL("../test-output/console/", import.meta.url).pathname;
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) {
  console.warn(`console browser tests skipped: ${CHROMIUM} is missing (apt install chromium)`);
}

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

/** A PUB frame of ASCII `body` with an optional header block. */
function pubFrame(dest: string, body: string, hdr = ""): string {
  const opt = hdr === "" ? "" : ` hdr:${hdr.length}`;
  return `PUB ${dest}${opt} ${hdr.length + body.length}\r\n${hdr}${body}\r\n`;
}

/** A browser with a fresh profile; `errors` collects console errors and page errors. */
async function launch(): Promise<
  { browser: BrowserContext; errors: string[]; done(): Promise<void> }
> {
  const profile = await Deno.makeTempDir({ prefix: "relayr-chromium-" });
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: SIZES.desktop,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return {
    browser,
    errors: [],
    async done() {
      await browser.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

async function openPage(
  browser: BrowserContext,
  errors: string[],
  url: string,
  size: keyof typeof SIZES = "desktop",
): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewportSize(SIZES[size]);
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") {
      errors.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  await page.goto(url);
  return page;
}

async function api(base: string, path: string): Promise<Record<string, unknown>> {
  return await (await fetch(`${base}${path}`)).json();
}

async function queueRow(base: string, name: string): Promise<Record<string, number> | undefined> {
  const r = await api(base, `/api/queues?q=${encodeURIComponent(name)}&limit=1000`);
  return (r.list as Record<string, number>[]).find((q) =>
    (q as unknown as { name: string }).name === name
  );
}

/** Screenshots of the page as it is now, in both schemes (and both sizes unless told). */
async function shoot(
  page: Page,
  name: string,
  sizes = Object.keys(SIZES) as (keyof typeof SIZES)[],
) {
  for (const size of sizes) {
    await page.setViewportSize(SIZES[size]);
    for (const scheme of ["dark", "light"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      // Two frames: the scheme's colours and the charts' resize have been painted.
      await page.evaluate(() =>
        new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))
      );
      await page.screenshot({ path: `${OUT}${name}-${size}-${scheme}.png` });
    }
  }
  await page.setViewportSize(SIZES.desktop);
}

/** Shows a view and waits until its list has loaded rows (or its empty line). */
async function view(page: Page, name: string): Promise<void> {
  await page.evaluate((n) => location.hash = n, name);
  await page.locator(`#view-${name} .td, #view-${name} .empty`).first().waitFor();
}

/** Types into the view's filter and waits until the list shows exactly `rows` rows with `text`. */
async function filter(page: Page, viewName: string, text: string): Promise<void> {
  await page.locator(`#view-${viewName} input[type=search]`).fill(text);
  await page.waitForFunction(
    ([v, t]) => {
      const names = [...document.querySelectorAll(`#view-${v} .td.name`)].map((e) =>
        e.textContent ?? ""
      );
      return names.length > 0 && names.every((n) => n.includes(t));
    },
    [viewName, text],
  );
}

/** In the page: whether the queue row `name` shows depth 0 or is gone from the table. */
function depthZeroOrGone(name: string): boolean {
  const cells = [...document.querySelectorAll("#view-queues .td")];
  const i = cells.findIndex((c) => c.textContent === name);
  return i < 0 || cells[i + 1].textContent === "0";
}

/** Confirms the open dialog with the button `verb`. */
async function confirm(page: Page, verb: string): Promise<void> {
  await page.locator("dialog[open] footer button", { hasText: verb }).click();
  await page.locator("dialog[open]").waitFor({ state: "detached" }).catch(() => {});
  await page.waitForFunction(() => !document.querySelector("dialog")?.open);
}

Deno.test({
  name: "console in Chromium: live charts, queue/topic/connection actions, screenshots",
  ignore: !hasChromium,
  async fn() {
    await Deno.mkdir(OUT, { recursive: true });
    const b = await brokerWithHttp(["--max-deliveries", "1"]);
    const load = await connected(b.server.port, "load-generator", false);
    const worker = await connected(b.server.port, "billing-worker", false);
    const victim = await connected(b.server.port, "mobile-gateway", false);
    const { browser, errors, done } = await launch();
    let loading = true;
    let loadDone: Promise<void> = Promise.resolve();
    try {
      // A broker with something to show: queues of several depths, a DLQ, a topic and a durable.
      let seed = "";
      const names = [
        "orders.eu",
        "orders.us",
        "billing.invoices",
        "email.outbound",
        "search.index",
        "audit",
      ];
      names.forEach((n, i) => {
        for (let k = 0; k < (i + 1) * 7; k++) {
          seed += `PUB queue:${n} 12\r\n{"n":${String(k).padStart(5, "0")}}\r\n`;
        }
      });
      seed += pubFrame("queue:orders", '{"order":1}', "Trace-Id: 7f3a\r\nTier: 1\r\n\r\n");
      for (let k = 2; k <= 5; k++) seed += pubFrame("queue:orders", `{"order":${k}}`);
      seed += "DECLARE topic:prices retain_messages:1000\r\n";
      seed += "SUB topic:prices sub_id:d durable:reporting start:first\r\nUNSUB d\r\n";
      seed += "SUB topic:prices sub_id:live\r\n";
      await load.send(seed);
      await worker.send("SUB queue:jobs sub_id:w ack:explicit\r\nPUB queue:jobs 6\r\npoison\r\n");
      const [dead] = await worker.msgs(1);
      await worker.send(`NACK msg_id:${dead.fields!.msg_id}\r\n`);
      await victim.send("SUB queue:email.outbound sub_id:g ack:explicit prefetch:3\r\n");
      await victim.msgs(3);

      const page = await openPage(browser, errors, `${b.base}/#overview`);
      await page.locator("#banner", { hasText: "Open console" }).waitFor();
      // A load while the overview is shown: its charts must move (the event, not a sleep).
      loadDone = (async () => {
        const batch = pubFrame("topic:prices", "p".repeat(64));
        for (let i = 0; loading && i < 2000; i++) {
          await load.send(batch.repeat(50));
          await new Promise((r) => setTimeout(r, 20)); // pacing, not a wait for an outcome
        }
      })();
      await page.waitForFunction(
        () => Number(document.getElementById("charts")!.dataset.maxIn) > 0,
        null,
        {
          timeout: 20_000,
        },
      );
      await page.waitForFunction(
        () => Number(document.getElementById("charts")!.dataset.samples) >= 4,
        null,
        {
          timeout: 20_000,
        },
      );
      assert.match(await page.locator(".live").textContent() ?? "", /live/);
      assert.notEqual(await page.locator(".card .value").first().textContent(), "—");
      await shoot(page, "overview");

      // Queues: peek shows the next messages with headers, and takes none.
      await view(page, "queues");
      await shoot(page, "queues");
      await filter(page, "queues", "orders");
      const before = await queueRow(b.base, "queue:orders");
      await page.locator(".td.name", { hasText: /^orders$/ }).waitFor();
      const rowButtons = (label: string) =>
        page.locator(`#view-queues .actions[data-row="queue:orders"] button:text-is("${label}")`);
      await rowButtons("Peek").click();
      await page.locator("#peek .msg").first().waitFor();
      assert.equal(await page.locator("#peek .msg").count(), 5);
      assert.match(await page.locator("#peek").textContent() ?? "", /Trace-Id: 7f3a/);
      await shoot(page, "queues-peek", ["desktop"]);
      await page.locator("dialog[open] footer button", { hasText: "Close" }).click();
      assert.deepEqual(await queueRow(b.base, "queue:orders"), before, "peek changed nothing");

      // Purge from the page: the table shows depth 0.
      await rowButtons("Purge").click();
      await shoot(page, "queues-confirm", ["phone"]);
      await confirm(page, "Purge");
      // Depth 0, or gone: the sweep forgets an empty queue nobody consumes.
      await page.waitForFunction(depthZeroOrGone, "orders");
      assert.equal((await queueRow(b.base, "queue:orders"))?.depth ?? 0, 0);

      // DLQ replay: the dead letter goes back to its queue and to the worker.
      await filter(page, "queues", "jobs");
      await page.locator(
        `#view-queues .actions[data-row="queue:jobs"] button:text-is("Replay")`,
      )
        .click();
      await confirm(page, "Replay");
      const [again] = await worker.msgs(1);
      assert.equal(new TextDecoder().decode(again.payload), "poison");
      await page.waitForFunction(depthZeroOrGone, "jobs.dlq");

      // Topics: the durable's details, then delete it.
      await view(page, "topics");
      await shoot(page, "topics");
      await page.locator(`#view-topics button:text-is("Details")`).first().click();
      await page.locator("#durables", { hasText: "reporting" }).waitFor();
      await shoot(page, "topics-details", ["desktop"]);
      await page.locator(`#durables button:text-is("Delete")`).click();
      await confirm(page, "Delete");
      await page.waitForFunction(async () => {
        const r = await fetch("/api/topics?q=prices").then((x) => x.json());
        return r.list[0].durables.length === 0;
      });

      // Connections: close one; it gets ERR ADMIN_CLOSED and leaves the table.
      await view(page, "connections");
      await shoot(page, "connections");
      await filter(page, "connections", "mobile-gateway");
      await page.locator(`#view-connections button:text-is("Close")`).click();
      await confirm(page, "Close connection");
      assert.match(
        (await victim.until((f) => f.line.startsWith("ERR"))).pop()!.line,
        /^ERR ADMIN_CLOSED/,
      );
      await page.locator("#view-connections .empty").waitFor();
      assert.equal(await queueRow(b.base, "queue:email.outbound").then((q) => q!.inflight), 0);

      await view(page, "closes");
      await page.locator("#view-closes .badge", { hasText: "ADMIN_CLOSED" }).waitFor();
      await shoot(page, "closes");
      await page.close();
      assert.deepEqual(errors, [], "no console errors");
    } finally {
      loading = false;
      await loadDone;
      await done();
      for (const c of [load, worker, victim]) await c.close();
      await b.stop();
    }
  },
});

Deno.test({
  name: "console in Chromium: 10,000 queues scroll and filter with a few dozen rows in the DOM",
  ignore: !hasChromium,
  async fn() {
    await Deno.mkdir(OUT, { recursive: true });
    const b = await brokerWithHttp();
    const c = await connected(b.server.port, "filler", false);
    const { browser, errors, done } = await launch();
    try {
      let frames = "";
      for (let i = 0; i < 10_000; i++) {
        frames += `PUB queue:tenant-${String(i).padStart(5, "0")} 1\r\nx\r\n`;
      }
      await c.send(frames);
      for (let i = 0; i < 200 && b.server.broker.queues.size < 10_000; i++) {
        await new Promise((r) => setTimeout(r, 25)); // bounded wait for the broker to read them all
      }
      assert.equal(b.server.broker.queues.size, 10_000);
      const page = await openPage(browser, errors, `${b.base}/#queues`);
      await page.locator("#view-queues .toolbar .count", { hasText: "10,000" }).waitFor();
      const cells = await page.locator("#view-queues .td.name").count();
      assert.ok(cells > 0 && cells < 120, `${cells} rows in the DOM, not 10,000`);
      // Scroll to the end: the last queue is fetched and shown.
      await page.locator("#view-queues .table").evaluate((el) => el.scrollTop = el.scrollHeight);
      await page.locator("#view-queues .td.name", { hasText: "tenant-09999" }).waitFor();
      // Sort by depth, descending, from the header; filter down to a few.
      await page.locator("#view-queues .th", { hasText: /^Depth$/ }).click();
      await filter(page, "queues", "tenant-0424");
      assert.equal(await page.locator("#view-queues .td.name").count(), 10);
      await shoot(page, "queues-10k", ["desktop"]);
      // The page stayed responsive: a frame comes promptly.
      const frameMs = await page.evaluate(() => {
        const t = performance.now();
        return new Promise<number>((r) => requestAnimationFrame(() => r(performance.now() - t)));
      });
      assert.ok(frameMs < 1000, `a frame took ${frameMs} ms`);
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      await done();
      await c.close();
      await b.stop();
    }
  },
});

Deno.test({
  name: "console in Chromium with auth on: it asks for the token, then shows and acts",
  ignore: !hasChromium,
  async fn() {
    await Deno.mkdir(OUT, { recursive: true });
    const token = "console-test-token-5d1f";
    const b = await brokerWithHttp(["--auth-token", token]);
    const { browser, errors, done } = await launch();
    try {
      const page = await openPage(browser, errors, `${b.base}/#queues`);
      await page.locator("dialog[open] input[name=token]").waitFor();
      assert.equal(await page.locator("#banner").isHidden(), true, "no open-console banner");
      await shoot(page, "sign-in");
      await page.locator("dialog[open] input[name=token]").fill(token);
      await page.locator("dialog[open] footer button", { hasText: "Sign in" }).click();
      await page.locator("#view-queues .empty").waitFor();
      await page.evaluate(() => location.hash = "overview");
      await page.waitForFunction(() =>
        Number(document.getElementById("charts")!.dataset.samples) >= 1
      );
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      await done();
      await b.stop();
    }
  },
});
