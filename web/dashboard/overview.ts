/**
 * The overview: figure cards and live uPlot charts fed by the stats stream
 * (`/api/stream`, one small delta a second over Server-Sent Events).
 *
 * @module
 */
import uPlot from "uplot";
import type { StatsDelta } from "../../src/http/mod.ts";
import { bytes, h, ms, num } from "./ui.ts";

/** One delta of the stream: the broker's own type (erased by the bundler). */
export type { StatsDelta };

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** Points each chart keeps: two minutes at one a second. */
const POINTS = 120;

interface ChartSpec {
  title: string;
  series: string[];
  value: (d: StatsDelta) => (number | null)[];
  fmt: (v: number) => string;
}

const CHARTS: ChartSpec[] = [
  {
    title: "Messages / s",
    series: ["in", "out"],
    value: (d) => [d.in_msgs_s, d.out_msgs_s],
    fmt: num,
  },
  {
    title: "Bytes / s",
    series: ["in", "out"],
    value: (d) => [d.in_bytes_s, d.out_bytes_s],
    fmt: bytes,
  },
  {
    title: "Delivery latency",
    series: ["p50", "p90", "p99"],
    value: (d) =>
      d.latency_ms ? [d.latency_ms.p50, d.latency_ms.p90, d.latency_ms.p99] : [null, null, null],
    fmt: ms,
  },
  {
    title: "Memory",
    series: ["rss", "heap"],
    value: (d) => [d.rss, d.heap_used],
    fmt: bytes,
  },
  {
    title: "Event-loop lag",
    series: ["last", "max (10 s)"],
    value: (d) => d.loop_lag_ms ? [d.loop_lag_ms.last, d.loop_lag_ms.max] : [null, null],
    fmt: ms,
  },
  {
    title: "Store fsync",
    series: ["mean", "last"],
    value: (d) => d.fsync_ms ? [d.fsync_ms.mean, d.fsync_ms.last] : [null, null],
    fmt: ms,
  },
];

interface Card {
  label: string;
  value: (d: StatsDelta) => string;
  sub?: (d: StatsDelta) => string;
}

const CARDS: Card[] = [
  { label: "Msgs in / s", value: (d) => num(d.in_msgs_s), sub: (d) => `${bytes(d.in_bytes_s)}/s` },
  {
    label: "Msgs out / s",
    value: (d) => num(d.out_msgs_s),
    sub: (d) => `${bytes(d.out_bytes_s)}/s`,
  },
  { label: "Connections", value: (d) => num(d.connections), sub: (d) => `${num(d.closed)} closed` },
  { label: "Queues", value: (d) => num(d.queues), sub: (d) => `${num(d.topics)} topics` },
  {
    label: "Latency p99",
    value: (d) => ms(d.latency_ms?.p99),
    sub: (d) => `p50 ${ms(d.latency_ms?.p50)}`,
  },
  { label: "Memory", value: (d) => bytes(d.rss), sub: (d) => `heap ${bytes(d.heap_used)}` },
  {
    label: "Loop lag",
    value: (d) => ms(d.loop_lag_ms?.last),
    sub: (d) => `max ${ms(d.loop_lag_ms?.max)}`,
  },
  {
    label: "Fsync",
    value: (d) => ms(d.fsync_ms?.mean),
    sub: (d) => d.fsync_ms ? `${d.fsync_ms.count} syncs` : "memory store",
  },
];

/** The overview's cards and charts, fed one delta at a time. */
export class Overview {
  #cards: HTMLElement;
  #charts: HTMLElement;
  #plots: uPlot[] = [];
  #data: (number | null)[][][] = CHARTS.map((c) => [[], ...c.series.map(() => [])]);
  #values: HTMLElement[] = [];
  #subs: HTMLElement[] = [];
  #maxIn = 0;
  #samples = 0;

  constructor(cards: HTMLElement, charts: HTMLElement) {
    this.#cards = cards;
    this.#charts = charts;
    for (const c of CARDS) {
      const v = h("div", { class: "value" }, "—");
      const s = h("div", { class: "sub" }, "");
      this.#values.push(v);
      this.#subs.push(s);
      cards.append(h("div", { class: "card" }, h("div", { class: "label" }, c.label), v, s));
    }
    this.#build();
    // Colours come from the CSS variables of the scheme: rebuild when it changes.
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.#build());
  }

  /** Takes one delta of the stream. */
  push(d: StatsDelta): void {
    CARDS.forEach((c, i) => {
      this.#values[i].textContent = c.value(d);
      this.#subs[i].textContent = c.sub?.(d) ?? "";
    });
    CHARTS.forEach((spec, i) => {
      const data = this.#data[i];
      data[0].push(d.t / 1000);
      spec.value(d).forEach((v, k) => data[k + 1].push(v));
      if (data[0].length > POINTS) { for (const s of data) s.shift(); }
      this.#plots[i]?.setData(data as uPlot.AlignedData);
    });
    this.#samples++;
    this.#maxIn = Math.max(this.#maxIn, d.in_msgs_s);
    // For the browser tests: the chart moved, and how far.
    this.#charts.dataset.samples = String(this.#samples);
    this.#charts.dataset.maxIn = String(this.#maxIn);
  }

  /** (Re)builds the charts with the current scheme's colours. */
  #build(): void {
    for (const p of this.#plots) p.destroy();
    this.#plots = [];
    this.#charts.replaceChildren();
    const css = getComputedStyle(document.documentElement);
    const v = (name: string) => css.getPropertyValue(name).trim();
    const colors = [v("--chart-1"), v("--chart-2"), v("--chart-3")];
    const axis = {
      stroke: v("--muted"),
      grid: { stroke: v("--line"), width: 1 },
      ticks: { show: false },
    };
    CHARTS.forEach((spec, i) => {
      const plot = h("div", { class: "plot" });
      this.#charts.append(h("div", { class: "panel chart" }, h("h3", {}, spec.title), plot));
      const u = new uPlot(
        {
          width: Math.max(200, plot.clientWidth),
          height: Math.max(120, plot.clientHeight - 30),
          series: [
            {},
            ...spec.series.map((label, k) => ({
              label,
              stroke: colors[k],
              width: 2,
              fill: k === 0 ? alpha(colors[k], 0.14) : undefined,
              value: (_: uPlot, x: number | null) => x === null ? "—" : spec.fmt(x),
              spanGaps: false,
            })),
          ],
          axes: [
            {
              ...axis,
              space: 70,
              // Whole seconds: sub-second ticks would print the same time twice.
              incrs: [1, 2, 5, 10, 15, 30, 60],
              values: (_: uPlot, ticks: number[]) => ticks.map((t) => clock.format(t * 1000)),
            },
            { ...axis, size: 64, values: (_: uPlot, ticks: number[]) => ticks.map(spec.fmt) },
          ],
          scales: {
            y: { range: (_u: uPlot, _min: number, max: number) => [0, Math.max(max, 1) * 1.1] },
          },
          cursor: { y: false, drag: { x: false, y: false } },
          // The legend names the lines; the cards hold the current values.
          legend: { live: false },
        },
        this.#data[i] as uPlot.AlignedData,
        plot,
      );
      this.#plots.push(u);
      new ResizeObserver(() => {
        u.setSize({
          width: Math.max(200, plot.clientWidth),
          height: Math.max(120, plot.clientHeight - 30),
        });
      }).observe(plot);
    });
  }
}

/** `#rrggbb` with an alpha, as canvas takes it. */
function alpha(hex: string, a: number): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (m === null) return hex;
  return `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${a})`;
}
