// Time series with uPlot (vendored, see docs/DASHBOARD.md). Each chart is a figure with a
// caption; the numbers behind it are also in the tiles and tables, for screen readers.
import { el } from "./dom.js";

const COLOURS = ["#0b57d0", "#b3261e", "#146c2e", "#7a4f00", "#6f2da8"];

// points: the API's series ([{bucket, ...}]); lines: [{label, value(point)}]; ratio: a 0..1 axis
export function timeChart(title, points, lines, format = (v) => v, ratio = false) {
  const figure = el("figure", { class: "chart" }, el("h2", {}, title));
  const data = [
    points.map((p) => Date.parse(p.bucket) / 1000),
    ...lines.map((line) => points.map((p) => line.value(p) ?? null)),
  ];
  const plot = new window.uPlot({
    width: 400,
    height: 200,
    series: [{}, ...lines.map((line, i) => ({
      label: line.label, stroke: COLOURS[i], width: 2, spanGaps: false,
      points: { show: true, size: 5, fill: COLOURS[i] },
      value: (_, v) => v === null ? "–" : format(v),
    }))],
    axes: [{}, { values: (_, ticks) => ticks.map(format), size: 70 }],
    scales: { x: { time: true }, y: ratio ? { range: [0, 1] } : { range: (_, min, max) => [0, Math.max(max ?? 0, 1)] } },
  }, data, figure);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(figure.clientWidth - 18, 200), height: 200 }));
  resize.observe(figure);
  return figure;
}
