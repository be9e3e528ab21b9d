/**
 * A virtual table over a server-paged list: it renders only the rows in view
 * (plus a margin) between two spacers, and asks the server for just that
 * window, sorted and filtered there. 10,000 queues cost the page what 40 do.
 *
 * @module
 */
import { getList, type ListPage, type ListQuery } from "./api.ts";
import { h } from "./ui.ts";

/** One column: `key` sorts on the server; `render` makes the cell. */
export interface Column<T> {
  key: string;
  label: string;
  /** A CSS grid track, e.g. "minmax(90px, 1fr)". */
  width?: string;
  num?: boolean;
  /** Whether the header sorts on it (default true). */
  sortable?: boolean;
  cls?: string;
  render: (row: T) => Node | string;
}

/** Options of a table. */
export interface TableOptions<T> {
  kind: string;
  columns: Column<T>[];
  sort: string;
  order?: "asc" | "desc";
  /** Shown when nothing matches. */
  empty: string;
  /** Called with each page the server sends (e.g. to compute rates). */
  onPage?: (page: ListPage<T>) => void;
}

/** Rows drawn beyond the viewport on each side, so a scroll shows no gap. */
const OVERSCAN = 12;
/** Must match `--row` in style.css. */
export const ROW_PX = 36;

/** A table filling `root`, fetching its visible window from `/api/<kind>`. */
export class VirtualTable<T> {
  readonly el: HTMLDivElement;
  #o: TableOptions<T>;
  #query: ListQuery;
  #grid: HTMLDivElement;
  #page: ListPage<T> | undefined;
  #seq = 0;
  #scheduled = false;
  #onCount: (matched: number, total: number) => void = () => {};

  constructor(o: TableOptions<T>) {
    this.#o = o;
    this.#query = { q: "", sort: o.sort, order: o.order ?? "asc", offset: 0, limit: 0 };
    this.#grid = h("div", { class: "grid", role: "table" });
    this.#grid.style.gridTemplateColumns = o.columns.map((c) => c.width ?? "minmax(90px, 1fr)")
      .join(" ");
    this.el = h("div", { class: "table panel" }, this.#grid);
    this.el.addEventListener("scroll", () => this.#schedule(), { passive: true });
    new ResizeObserver(() => this.#schedule()).observe(this.el);
  }

  /** Called with the match count after each load. */
  onCount(f: (matched: number, total: number) => void): void {
    this.#onCount = f;
  }

  /** Filters by a substring of the name (server-side); back to the top. */
  filter(q: string): void {
    this.#query.q = q;
    this.el.scrollTop = 0;
    void this.refresh();
  }

  /** Loads the rows in view now. */
  async refresh(): Promise<void> {
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW_PX) - OVERSCAN);
    const count = Math.ceil(Math.max(this.el.clientHeight, 400) / ROW_PX) + 2 * OVERSCAN;
    const seq = ++this.#seq;
    const page = await getList<T>(this.#o.kind, { ...this.#query, offset: first, limit: count });
    if (seq !== this.#seq) return; // a newer request is on its way
    this.#page = page;
    this.#o.onPage?.(page);
    this.#render();
    this.#onCount(page.matched, page.total);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    requestAnimationFrame(() => {
      this.#scheduled = false;
      const p = this.#page;
      const first = Math.floor(this.el.scrollTop / ROW_PX);
      const last = first + Math.ceil(this.el.clientHeight / ROW_PX);
      // Still inside the loaded window: nothing to fetch.
      if (p !== undefined && first >= p.offset && last <= p.offset + p.list.length) return;
      void this.refresh().catch(() => {});
    });
  }

  #sortBy(key: string): void {
    const q = this.#query;
    if (q.sort === key) q.order = q.order === "asc" ? "desc" : "asc";
    else {
      q.sort = key;
      q.order = this.#o.columns.find((c) => c.key === key)?.num ? "desc" : "asc";
    }
    void this.refresh();
  }

  #render(): void {
    const p = this.#page!;
    const o = this.#o;
    const cells: Node[] = o.columns.map((c) => {
      const sorted = this.#query.sort === c.key;
      const th = h("div", {
        class: `th${c.num ? " num" : ""}`,
        role: "columnheader",
        "aria-sort": sorted ? (this.#query.order === "asc" ? "ascending" : "descending") : null,
      }, c.label);
      if (c.sortable !== false) th.addEventListener("click", () => this.#sortBy(c.key));
      return th;
    });
    const span = `grid-column: 1 / -1; height: ${p.offset * ROW_PX}px`;
    cells.push(h("div", { style: span, "aria-hidden": "true" }));
    for (const row of p.list) {
      for (const c of o.columns) {
        const cls = `td${c.num ? " num" : ""}${c.cls ? ` ${c.cls}` : ""}`;
        cells.push(h("div", { class: cls, role: "cell" }, c.render(row)));
      }
    }
    const below = Math.max(0, p.matched - p.offset - p.list.length) * ROW_PX;
    cells.push(
      h("div", { style: `grid-column: 1 / -1; height: ${below}px`, "aria-hidden": "true" }),
    );
    if (p.matched === 0) {
      cells.push(h("div", { class: "empty", style: "grid-column: 1 / -1" }, o.empty));
    }
    this.#grid.replaceChildren(...cells);
  }
}
