/**
 * Small DOM helpers: building elements, number formatting, the one dialog
 * (confirmations and peeks) and toasts. Text always goes in as text, never as
 * HTML: names and client ids come from the network.
 *
 * @module
 */

/** Attributes and children of `h()`. */
type Child = Node | string | number | null | undefined | false;

/** Builds an element: `h("button", { class: "danger", onclick }, "Purge")`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "class") el.className = String(v);
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === "style") el.style.cssText = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "object" ? c : String(c));
  }
  return el;
}

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat("en");

/** 1234567 as "1.2M"; small numbers in full. */
export function num(n: number | null | undefined): string {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Math.abs(n) < 10_000 ? whole.format(Math.round(n)) : compact.format(n);
}

/** A count in full: "10,000". */
export function full(n: number): string {
  return whole.format(n);
}

/** Bytes as "12.3 MiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Milliseconds as "0.25 ms", "12 ms", "1.5 s". */
export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  if (n >= 1000) return `${(n / 1000).toFixed(1)} s`;
  return `${n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : Math.round(n)} ms`;
}

/** Seconds as "3d 4h", "5m 12s". */
export function age(s: number): string {
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const dialog = () => document.getElementById("dialog") as HTMLDialogElement;

/** Opens the dialog with a title, a body and buttons; resolves with the value of the button pressed ("" for Esc). */
export function openDialog(
  title: string,
  body: Node,
  buttons: { label: string; value: string; class?: string }[],
): Promise<string> {
  const d = dialog();
  const form = d.querySelector("form")!;
  form.replaceChildren(
    h("header", {}, title),
    h("div", { class: "body" }, body),
    h(
      "footer",
      {},
      ...buttons.map((b) => h("button", { value: b.value, class: b.class }, b.label)),
    ),
  );
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue), { once: true });
  });
}

/** Asks before a destructive action; resolves true when confirmed. */
export async function confirmAction(title: string, text: string, verb: string): Promise<boolean> {
  const answer = await openDialog(title, h("p", {}, text), [
    { label: "Cancel", value: "cancel" },
    { label: verb, value: "ok", class: "danger primary" },
  ]);
  return answer === "ok";
}

/** Shows a short message in the corner for a few seconds. */
export function toast(text: string, error = false): void {
  const t = h("div", { class: error ? "toast error" : "toast", role: "status" }, text);
  document.getElementById("toasts")!.append(t);
  setTimeout(() => t.remove(), error ? 8000 : 4000);
}
