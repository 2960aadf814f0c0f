// Overview: live traffic and each replica's load, refreshed every two seconds.
import { api } from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { bytes, int, num, seconds } from "../format.js";
import { badge, h, section, select, stat, table } from "../ui.js";

const WINDOWS = [["60", "last minute"], ["300", "last 5 minutes"], ["3600", "last hour"]];
const REFRESH_MS = 2000;

function clock(iso) {
  return iso.slice(11, 19);
}

function tiles(o) {
  return h("div.stats",
    stat("Requests", int(o.requests), `${num((60 * o.requests) / o.window_seconds, 1)} /min`),
    stat("Completion tokens/s", num(o.completion_tokens_per_second, 1),
      `${int(o.completion_tokens)} tokens`),
    stat("Prompt tokens/s", num(o.prompt_tokens_per_second, 1), `${int(o.prompt_tokens)} tokens`),
    stat("Time to first token", seconds(o.ttft_p50_seconds),
      `mean ${seconds(o.ttft_mean_seconds)} · p95 ${seconds(o.ttft_p95_seconds)}`),
    stat("Errors", int(o.errors),
      o.requests ? `${num((100 * o.errors) / o.requests, 1)} % of requests` : "no requests"));
}

function charts(o) {
  const step = o.window_seconds / o.series.length;
  const labels = o.series.map((b) => clock(b.start));
  return h("div.charts",
    lineChart({ title: "Tokens per second", labels, series: [
      { name: "completion", values: o.series.map((b) => b.completion_tokens / step) },
      { name: "prompt", values: o.series.map((b) => b.prompt_tokens / step) },
    ] }),
    barChart({ title: "Requests", labels, stacked: true, series: [
      { name: "ok", values: o.series.map((b) => b.requests - b.errors), color: "#2da44e" },
      { name: "errors", values: o.series.map((b) => b.errors), color: "#e5534b" },
    ] }));
}

function replicas(list) {
  return table([
    { label: "Replica", cell: (r) => h("code", r.id) },
    { label: "Model", cell: (r) => r.model },
    { label: "Deployment", cell: (r) => `${r.deployment_id} (${r.mode})` },
    { label: "State", cell: (r) => badge(r.state) },
    { label: "Node", cell: (r) => r.node || "—" },
    { label: "Accelerators", cell: (r) => (r.accelerators || []).join(", ") || "cpu" },
    { label: "Memory", cell: (r) => bytes(r.memory_bytes), num: true },
    { label: "In flight", cell: (r) => int(r.in_flight), num: true },
    { label: "URL", cell: (r) => h("code", r.url || "—") },
  ], list, { empty: "No replicas are running: a deployment scales up on its first request." });
}

export async function render(root, ctx) {
  let windowSeconds = "60";
  const picker = select("window", WINDOWS, windowSeconds);
  const body = h("div");
  const updated = h("span.muted");
  picker.addEventListener("change", () => { windowSeconds = picker.value; refresh(); });
  const scope = ctx.platform ? "all tenants" : ctx.me.tenant_name;
  root.append(h("div.page-head", h("h1", "Overview"), h("span.muted", scope), picker, updated),
    body);

  async function refresh() {
    const o = await api(`/admin/v1/overview?window_seconds=${windowSeconds}`);
    body.replaceChildren(tiles(o), charts(o), section("Replicas", replicas(o.replicas)));
    updated.textContent = `updated ${clock(o.until)} UTC`;
  }
  await refresh();
  ctx.every(REFRESH_MS, () => refresh().catch((error) => { updated.textContent = error.message; }));
}
