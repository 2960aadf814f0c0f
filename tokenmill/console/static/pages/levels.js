// Service levels: per model and service tier, how fast and how reliably requests were served.
import { api } from "../api.js";
import { barChart } from "../charts.js";
import { int, num } from "../format.js";
import { h, notice, section, select, table } from "../ui.js";

const WINDOWS = [["1", "last hour"], ["24", "last 24 hours"], ["168", "last 7 days"]];
const secs = (s) => (s == null ? "–" : `${num(s, 2)} s`);
const share = (f) => (f == null ? "–" : `${num(100 * f, 1)}%`);
const label = (r) => `${r.model} · ${r.service_tier}`;

function charts(rows) {
  const labels = rows.map(label);
  return h("div.charts",
    barChart({ title: "Time to first token (s)", labels, integer: false,
      format: (v) => num(v, 2), series: [
        { name: "p50", values: rows.map((r) => r.ttft_p50 || 0) },
        { name: "p99", values: rows.map((r) => r.ttft_p99 || 0) },
      ] }),
    barChart({ title: "Within the tier's first-token target (%)", labels, integer: false,
      format: (v) => num(v, 1), series: [
        { name: "attainment", values: rows.map((r) => 100 * (r.attainment ?? 0)),
          color: "#2da44e" },
        { name: "availability", values: rows.map((r) => 100 * r.availability) },
      ] }));
}

function levelsTable(rows) {
  return table([
    { label: "Model", cell: (r) => r.model },
    { label: "Tier", cell: (r) => r.service_tier },
    { label: "Requests", cell: (r) => int(r.requests), num: true },
    { label: "Answered", cell: (r) => int(r.answered), num: true },
    { label: "TTFT p50", cell: (r) => secs(r.ttft_p50), num: true },
    { label: "p95", cell: (r) => secs(r.ttft_p95), num: true },
    { label: "p99", cell: (r) => secs(r.ttft_p99), num: true },
    { label: "TPOT p50", cell: (r) => secs(r.tpot_p50), num: true },
    { label: "p99", cell: (r) => secs(r.tpot_p99), num: true },
    { label: "Target", cell: (r) => secs(r.ttft_target_seconds), num: true },
    { label: "Met", cell: (r) => share(r.attainment), num: true },
    { label: "Available", cell: (r) => share(r.availability), num: true },
    { label: "Refused / failed", cell: (r) => Object.entries(r.errors)
      .map(([code, n]) => `${code} ${n}`).join(", ") || "–" },
  ], rows, { empty: "No requests in this window.",
    rowAttrs: (r) => ({ dataset: { tier: r.service_tier, model: r.model } }) });
}

export async function render(root, ctx) {
  const picker = select("window", WINDOWS, "24");
  picker.id = "levels-window";
  const body = h("div#levels");
  async function draw() {
    const since = new Date(Date.now() - Number(picker.value) * 3600e3).toISOString();
    const query = `since=${encodeURIComponent(since)}`;
    const rows = (await api(`/admin/v1/tenants/${ctx.tenantId}/service_levels?${query}`)).data;
    body.replaceChildren(
      rows.length ? charts(rows) : null,
      section("Per model and tier", levelsTable(rows)),
      notice("Streamed answers only give first-token and per-token times. A request refused " +
        "for its tier's target counts as a service_tier_overloaded refusal, not a miss.", "info"));
  }
  picker.addEventListener("change", draw);
  root.append(h("div.page-head", h("h1", "Service levels"), picker), body);
  await draw();
  ctx.every(10000, () => draw().catch(() => {}));
}
