// Recent telemetry as small inline SVG line charts, one per metric: drawn here, nothing
// loaded from elsewhere.

import { h, svg } from "./dom.js";
import { clock, number } from "./format.js";
import { label } from "./i18n.js";

const WIDTH = 280;
const HEIGHT = 72;
const PAD = { top: 8, right: 8, bottom: 14, left: 8 };
// Points kept per metric (the newest): enough for a day at 5-minute resolution.
const MAX_POINTS = 300;

/** `points`: [{time, metric, value}] → one <figure> per metric, in first-seen order. */
export function telemetryCharts(points) {
  const byMetric = new Map();
  for (const point of points) {
    const time = Date.parse(point.time);
    if (typeof point.value !== "number" || !Number.isFinite(point.value) || Number.isNaN(time)) {
      continue;
    }
    if (!byMetric.has(point.metric)) byMetric.set(point.metric, []);
    byMetric.get(point.metric).push({ time, value: point.value, iso: point.time });
  }
  return [...byMetric].map(([metric, series]) => {
    series.sort((a, b) => a.time - b.time);
    return chart(metric, series.slice(-MAX_POINTS));
  });
}

function chart(metric, series) {
  const values = series.map((p) => p.value);
  const min = Math.min(...values);
  const max = Math.max(...values);
  const first = series[0];
  const last = series[series.length - 1];
  const spanT = last.time - first.time || 1;
  const spanV = max - min || 1;
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (p) => PAD.left + ((p.time - first.time) / spanT) * innerW;
  const y = (p) => PAD.top + innerH - ((p.value - min) / spanV) * innerH;
  const path = series.map((p) => `${x(p).toFixed(1)},${y(p).toFixed(1)}`).join(" ");
  const title = label("metric", metric);
  const summary = `${title}: ${number(last.value)} (${number(min)}–${number(max)})`;
  return h(
    "figure",
    { class: "chart", dataset: { metric } },
    h(
      "figcaption",
      {},
      h("span", { class: "chart-title" }, title),
      h("strong", { class: "chart-last" }, number(last.value)),
    ),
    svg(
      "svg",
      {
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        width: WIDTH,
        height: HEIGHT,
        role: "img",
        "aria-label": summary,
        class: "sparkline",
      },
      svg("title", {}, summary),
      svg("line", {
        x1: PAD.left,
        x2: WIDTH - PAD.right,
        y1: HEIGHT - PAD.bottom,
        y2: HEIGHT - PAD.bottom,
        class: "axis",
      }),
      series.length > 1
        ? svg("polyline", { points: path, class: "trace" })
        : svg("circle", { cx: x(last), cy: y(last), r: 2.5, class: "trace-dot" }),
      svg("circle", { cx: x(last), cy: y(last), r: 2.5, class: "trace-dot" }),
      svg("text", { x: PAD.left, y: HEIGHT - 2, class: "tick" }, clock(first.iso)),
      svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 2, class: "tick end" }, clock(last.iso)),
      svg("text", { x: WIDTH - PAD.right, y: PAD.top + 2, class: "tick end" }, number(max)),
    ),
  );
}
