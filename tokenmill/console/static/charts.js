// Bar and line charts drawn as SVG: axes with nice ticks, labels, a legend and tooltips; and
// lines over a logarithmic x axis, with vertical markers.
import { compact } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#f0883e", "#2da44e", "#a371f7", "#d4a72c", "#e5534b", "#39c5cf"];
const M = { top: 12, right: 12, bottom: 34, left: 52 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

/** Round tick values covering [0, max]: steps of 1, 2 or 5 times a power of ten. */
export function ticks(max, count = 4, integer = false) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  if (integer) step = Math.max(1, Math.round(step));
  const out = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(v);
  return out;
}

/** Axes for values in [0, top]: the left margin fits the widest tick label. */
function frame(width, height, steps, format, labels) {
  const top = steps.at(-1);
  const names = steps.map(format);
  const left = Math.max(M.left, 12 + 6 * Math.max(...names.map((n) => n.length)));
  const inner = { w: width - left - M.right, h: height - M.top - M.bottom };
  const band = inner.w / Math.max(1, labels.length);
  const x = (i) => left + band * i;
  const y = (v) => M.top + inner.h - (v / top) * inner.h;
  const axes = svg("g", { class: "axes" });
  steps.forEach((t, i) => {
    axes.append(svg("line", { x1: left, x2: width - M.right, y1: y(t), y2: y(t), class: "grid" }));
    const text = svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end" });
    text.textContent = names[i];
    axes.append(text);
  });
  axes.append(svg("line", { x1: left, x2: width - M.right, y1: y(0), y2: y(0), class: "axis" }));
  const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(inner.w / 64))));
  labels.forEach((label, i) => {
    if (i % every) return;
    const text = svg("text", { x: x(i + 0.5), y: height - M.bottom + 16, "text-anchor": "middle" });
    text.textContent = label;
    axes.append(text);
  });
  return { band, x, y, axes };
}

function tooltip(target, lines) {
  const tip = document.getElementById("tooltip");
  target.addEventListener("mousemove", (event) => {
    tip.replaceChildren(...lines.map((line, i) => {
      const div = document.createElement(i ? "div" : "strong");
      div.textContent = line;
      return div;
    }));
    tip.hidden = false;
    tip.style.left = `${event.clientX + 12}px`;
    tip.style.top = `${event.clientY + 12}px`;
  });
  target.addEventListener("mouseleave", () => { tip.hidden = true; });
  target.append(svg("title", {}, lines.join("\n")));
}

function legend(series) {
  const el = document.createElement("div");
  el.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color || PALETTE[i % PALETTE.length];
    item.append(swatch, s.name);
    el.append(item);
  });
  return el;
}

function wrap(title, chart, series) {
  const el = document.createElement("figure");
  el.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  el.append(caption, chart, legend(series));
  return el;
}

/** Bars per label, one per series side by side, or stacked. */
export function barChart({ title, labels, series, stacked = false, format = compact,
  integer = true, width = 560, height = 220 }) {
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = stacked ? Math.max(0, ...totals) : Math.max(0, ...series.flatMap((s) => s.values));
  const { band, x: left, y, axes } = frame(width, height, ticks(max, 4, integer), format, labels);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "bars", role: "img" }, axes);
  const group = Math.min(band * 0.8, 56 * (stacked ? 1 : series.length));
  const pad = (band - group) / 2;
  const slot = stacked ? group : group / series.length;
  labels.forEach((label, i) => {
    let base = 0;
    series.forEach((s, k) => {
      const value = s.values[i] || 0;
      const x = left(i) + pad + (stacked ? 0 : slot * k);
      const y0 = y(base);
      const y1 = y(base + value);
      const rect = svg("rect", { x, y: y1, width: Math.max(1, slot - 1), height: Math.max(0, y0 - y1),
        fill: s.color || PALETTE[k % PALETTE.length], "data-label": label, "data-series": s.name,
        "data-value": value });
      tooltip(rect, [label, ...series.map((t) => `${t.name}: ${format(t.values[i] || 0)}`)]);
      chart.append(rect);
      if (stacked) base += value;
    });
  });
  return wrap(title, chart, series);
}

/** Lines over evenly spaced labels, with a dot per point. */
export function lineChart({ title, labels, series, format = compact, integer = false,
  width = 560, height = 220 }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values));
  const { x, y, axes } = frame(width, height, ticks(max, 4, integer), format, labels);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "lines", role: "img" }, axes);
  series.forEach((s, k) => {
    const color = s.color || PALETTE[k % PALETTE.length];
    const points = s.values.map((v, i) => [x(i + 0.5), y(v || 0)]);
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
    points.forEach(([px, py], i) => {
      const dot = svg("circle", { cx: px, cy: py, r: 2.5, fill: color, "data-label": labels[i],
        "data-series": s.name, "data-value": s.values[i] || 0 });
      tooltip(dot, [labels[i], ...series.map((t) => `${t.name}: ${format(t.values[i] || 0)}`)]);
      chart.append(dot);
    });
  });
  return wrap(title, chart, series);
}

/** Round values covering [low, high] on a log axis: 1, 2 and 5 times each power of ten (only
 *  the powers when the range spans more than three decades). */
function logTicks(low, high) {
  const steps = Math.log10(high / low) > 3 ? [1] : [1, 2, 5];
  const out = [];
  for (let k = Math.floor(Math.log10(low)); k <= Math.ceil(Math.log10(high)); k++) {
    for (const m of steps) {
      const v = m * 10 ** k;
      if (v >= low * (1 - 1e-9) && v <= high * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

/** Lines over positive, increasing `xs` on a log scale, y from zero; each marker {x, label,
 *  name, y?} a dashed vertical line labelled at the top (with a dot at y when given). */
export function logLineChart({ title, xs, series, markers = [], format = compact,
  formatX = compact, width = 560, height = 240 }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values), ...markers.map((m) => m.y || 0));
  const { x: column, y, axes } = frame(width, height, ticks(max), format, []); // no labels
  const left = column(0);
  const inner = width - M.right - left;
  let [low, high] = [Math.min(...xs), Math.max(...xs)];
  if (!(high > low)) [low, high] = [low / 2, low * 2];
  const x = (v) => left + (inner * Math.log10(v / low)) / Math.log10(high / low);
  for (const t of logTicks(low, high)) {
    axes.append(svg("line", { x1: x(t), x2: x(t), y1: M.top, y2: y(0), class: "grid" }));
    const text = svg("text", { x: x(t), y: height - M.bottom + 16, "text-anchor": "middle" });
    text.textContent = formatX(t);
    axes.append(text);
  }
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "lines", role: "img" }, axes);
  series.forEach((s, k) => {
    const color = s.color || PALETTE[k % PALETTE.length];
    const points = xs.map((v, i) => [x(v), y(s.values[i] || 0)]);
    chart.append(svg("polyline", { points: points.map((p) => p.join(",")).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
    points.forEach(([px, py], i) => {
      const dot = svg("circle", { cx: px, cy: py, r: 2.5, fill: color, "data-x": xs[i],
        "data-series": s.name, "data-value": s.values[i] || 0 });
      const lines = series.map((t) => `${t.name}: ${format(t.values[i] || 0)}`);
      tooltip(dot, [formatX(xs[i]), ...lines]);
      chart.append(dot);
    });
  });
  markers.forEach((m, i) => {
    const at = x(m.x);
    const end = at > left + inner / 2; // a label on the right half reads leftwards
    const label = svg("text", { x: at + (end ? -4 : 4), y: M.top + 10 + 12 * i,
      "text-anchor": end ? "end" : "start" });
    label.textContent = m.label;
    const mark = svg("g", { class: "marker", "data-marker": m.name, "data-x": m.x },
      svg("line", { x1: at, x2: at, y1: M.top, y2: y(0), stroke: "#57606a",
        "stroke-dasharray": "4 3" }), label);
    if (m.y !== undefined) mark.append(svg("circle", { cx: at, cy: y(m.y), r: 4, fill: "none",
      stroke: "#24292f", "stroke-width": 1.5 }));
    chart.append(mark);
  });
  return wrap(title, chart, series);
}

const STEP_DOTS = 120; // a series with more points is drawn as a line alone

/** Lines over numbered steps on a linear x axis from 0, each series its own [step, value]
 *  points (one may have a point at every step, another at a few); y from zero. */
export function stepChart({ title, series, format = compact, width = 560, height = 220 }) {
  const all = series.flatMap((s) => s.points);
  const max = Math.max(0, ...all.map(([, v]) => v));
  const { x: column, y, axes } = frame(width, height, ticks(max), format, []); // no labels
  const left = column(0);
  const inner = width - M.right - left;
  const steps = ticks(Math.max(1, ...all.map(([s]) => s)), Math.max(2, Math.floor(inner / 64)),
    true);
  const x = (step) => left + (inner * step) / steps.at(-1);
  for (const t of steps) {
    const text = svg("text", { x: x(t), y: height - M.bottom + 16, "text-anchor": "middle" });
    text.textContent = String(t);
    axes.append(text);
  }
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "lines", role: "img" }, axes);
  series.forEach((s, k) => {
    const color = s.color || PALETTE[k % PALETTE.length];
    const points = [...s.points].sort((a, b) => a[0] - b[0]);
    chart.append(svg("polyline", { points: points.map(([st, v]) => `${x(st)},${y(v)}`).join(" "),
      fill: "none", stroke: color, "stroke-width": 2, "data-series": s.name }));
    if (points.length > STEP_DOTS) return;
    for (const [step, value] of points) {
      const dot = svg("circle", { cx: x(step), cy: y(value), r: 2.5, fill: color,
        "data-step": step, "data-series": s.name, "data-value": value });
      tooltip(dot, [`step ${step}`, `${s.name}: ${format(value)}`]);
      chart.append(dot);
    }
  });
  return wrap(title, chart, series);
}
