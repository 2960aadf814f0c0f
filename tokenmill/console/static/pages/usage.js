// Usage and billing: tokens and spend by day, model, key and tier; credits; statements.
import { api, download } from "../api.js";
import { barChart } from "../charts.js";
import { int, money, when } from "../format.js";
import { form, field, h, input, section, select, stat, table } from "../ui.js";

const RANGES = [["7", "last 7 days"], ["30", "last 30 days"], ["90", "last 90 days"]];
const dollars = (micros) => money(Math.round(micros));

function days(count) {
  const out = [];
  const today = new Date();
  for (let i = count - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

function byDayCharts(rows, range) {
  const labels = days(range);
  const at = Object.fromEntries(rows.map((r) => [r.group, r]));
  const pick = (name) => labels.map((d) => at[d]?.[name] || 0);
  const short = labels.map((d) => d.slice(5));
  return h("div.charts",
    barChart({ title: "Tokens by day", labels: short, stacked: true, series: [
      { name: "prompt", values: pick("prompt_tokens") },
      { name: "completion", values: pick("completion_tokens") },
    ] }),
    barChart({ title: "Spend by day", labels: short, format: dollars, series: [
      { name: "spend", values: pick("cost_micros"), color: "#2da44e" },
    ] }));
}

function groupCharts(title, rows, name) {
  if (!rows.length) return null;
  const labels = rows.map((r) => name(r.group));
  return h("div.charts",
    barChart({ title: `Tokens by ${title}`, labels, stacked: true, series: [
      { name: "prompt", values: rows.map((r) => r.prompt_tokens) },
      { name: "completion", values: rows.map((r) => r.completion_tokens) },
    ] }),
    barChart({ title: `Spend by ${title}`, labels, format: dollars, series: [
      { name: "spend", values: rows.map((r) => r.cost_micros), color: "#2da44e" },
    ] }));
}

function usageTable(rows, label, name) {
  return table([
    { label, cell: (r) => name(r.group) },
    { label: "Requests", cell: (r) => int(r.requests), num: true },
    { label: "Prompt tokens", cell: (r) => int(r.prompt_tokens), num: true },
    { label: "Cached", cell: (r) => int(r.cached_tokens), num: true },
    { label: "Completion tokens", cell: (r) => int(r.completion_tokens), num: true },
    { label: "Spend", cell: (r) => money(r.cost_micros), num: true },
  ], rows, { empty: "No usage in this range." });
}

function statements(ctx) {
  const month = new Date().toISOString().slice(0, 7);
  const shown = h("div");
  const base = `/admin/v1/tenants/${ctx.tenantId}/statements`;
  const picker = input("month", { type: "month", value: month, required: true });
  return [form([field("Month", picker)], "Show statement", async (v) => {
    const s = await api(`${base}/${v.month}`);
    shown.replaceChildren(
      h("p", `Statement ${s.month}: usage ${money(s.total_micros)}, credits `,
        `${money(s.credits_micros)}, closing balance ${money(s.closing_balance_micros)}.`),
      usageTable(s.lines, "Model", (g) => g),
      h("button#download-csv", { type: "button", onclick: () =>
        download(`${base}/${s.month}.csv`, `tokenmill-${ctx.tenantId}-${s.month}.csv`) },
      "Download CSV"));
  }, { inline: true }), shown];
}

export async function render(root, ctx) {
  const picker = select("range", RANGES, "30");
  const body = h("div");
  root.append(h("div.page-head", h("h1", "Usage & billing"),
    h("span.muted", `tenant ${ctx.tenantId}`), picker), body,
    section("Monthly statements", statements(ctx)));
  const keys = await api(`/admin/v1/tenants/${ctx.tenantId}/keys`).then((r) => r.data);
  const keyName = (id) => keys.find((k) => k.id === id)?.name || id;

  async function draw() {
    const range = Number(picker.value);
    const since = `${days(range)[0]}T00:00:00+00:00`;
    const base = `/admin/v1/tenants/${ctx.tenantId}`;
    const query = (group) => api(`${base}/usage?group_by=${group}&since=${encodeURIComponent(since)}`)
      .then((r) => r.data);
    const [byDay, byModel, byKey, byTier, byApp, credits] = await Promise.all([
      query("day"), query("model"), query("key"), query("service_tier"), query("app"),
      api(`${base}/credits?limit=10`)]);
    const total = (name) => byDay.reduce((sum, r) => sum + r[name], 0);
    body.replaceChildren(
      h("div.stats",
        stat("Credit balance", money(credits.balance_micros)),
        stat("Spend", money(total("cost_micros")), picker.selectedOptions[0].textContent),
        stat("Requests", int(total("requests"))),
        stat("Tokens", int(total("prompt_tokens") + total("completion_tokens")),
          `${int(total("prompt_tokens"))} prompt · ${int(total("completion_tokens"))} completion`)),
      byDayCharts(byDay, range),
      section("By model", groupCharts("model", byModel, (g) => g),
        usageTable(byModel, "Model", (g) => g)),
      section("By key", groupCharts("key", byKey, keyName), usageTable(byKey, "Key", keyName)),
      section("By service tier", usageTable(byTier, "Tier", (g) => g)),
      section("By App", usageTable(byApp, "App", (g) => (g === "none" ? "not through an App" : g))),
      section("Credits", table([
        { label: "When", cell: (e) => when(e.created_at) },
        { label: "Kind", cell: (e) => e.kind },
        { label: "Amount", cell: (e) => money(e.amount_micros), num: true },
        { label: "Note", cell: (e) => e.note || e.model || "" },
      ], credits.entries, { empty: "No ledger entries." })));
  }
  picker.addEventListener("change", draw);
  await draw();
  ctx.every(10000, () => draw().catch(() => {}));
}
