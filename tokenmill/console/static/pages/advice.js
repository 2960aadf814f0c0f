// Advice: serverless (per token) or dedicated (per accelerator-hour) for the tenant in scope,
// from its own usage replayed in the simulator (GET /admin/v1/tenants/{id}/advice; seconds to
// a minute a model). Computing for every model used lists them and fills the model picker; a
// model's advice shows the recommendation and its reasons, the traffic, monthly cost against
// volume on a log scale with the break-even, the bills month by month and the scheduled fleet
// hour by hour. A platform admin may also load the fleet-wide summary (GET /admin/v1/advice):
// which tenants would pay less on dedicated accelerators, how many, and how busy they would be.
import { api } from "../api.js";
import { barChart, logLineChart } from "../charts.js";
import { int, money, num, when } from "../format.js";
import { badge, field, form, h, input, notice, section, select, stat, table } from "../ui.js";

const EVERY = "";
const KINDS = {
  serverless: ["Serverless", "stay on shared replicas, pay per token"],
  dedicated: ["Dedicated", "accelerators of your own, always on, paid by the hour"],
  scheduled: ["Scheduled", "accelerators of your own that follow the hours of the day"],
};
const dollars = (micros) => (micros == null ? "—" : money(Math.round(micros)));
const share = (f) => (f == null ? "—" : `${num(100 * f, 1)}%`);
const hour = (i) => String(i).padStart(2, "0");
const advicePath = (ctx) => `/admin/v1/tenants/${encodeURIComponent(ctx.tenantId)}/advice`;

/** The curve's point at the tenant's own volume (factor 1 is always on it). */
const atVolume = (a) => a.curve.find((p) => p.factor === 1);

/** Requests a day at the tenant's volume, unrounded (the API rounds it to hundredths). */
const perDay = (a) => a.traffic.requests / a.window.days;

/** A place for slow work: `run` shows `text` while it goes, then its nodes or its error; the
 *  latest call wins. `data-state` is idle, busy, done or failed. */
function outcome(id) {
  const el = h(`div#${id}`, { dataset: { state: "idle" } });
  let ticket = 0;
  const done = (...nodes) => {
    ticket += 1;
    el.dataset.state = "done";
    el.replaceChildren(...nodes.filter(Boolean));
  };
  async function run(text, work) {
    const mine = (ticket += 1);
    el.dataset.state = "busy";
    el.replaceChildren(h("p.muted.busy", h("progress"), ` ${text}`));
    try {
      const nodes = await work();
      if (mine === ticket) done(...nodes);
    } catch (error) {
      if (mine !== ticket) return;
      el.dataset.state = "failed";
      el.replaceChildren(notice(error.message));
    }
  }
  return { el, run, done };
}

/** Models with no advice and why; `tenants`: name each one's tenant too (the fleet's). */
const skippedNotes = (skipped, tenants = false) => skipped.map((s) =>
  h("div.notice.warn.skipped", { dataset: { model: s.model } },
    h("strong", tenants ? `${s.tenant_id} · ${s.model}` : s.model), ` skipped: ${s.reason}`));

// ---- one model's advice ------------------------------------------------------------------------

function breakEvenNote(a) {
  const be = a.break_even;
  const range = `${num(a.curve[0].factor)}× to ${num(a.curve.at(-1).factor)}× your volume`;
  if (be.factor !== null) return `${num(be.factor, 2)}× your volume`;
  return be.beyond === "below" ? `dedicated is cheaper from ${range}`
    : `serverless is cheaper from ${range}`;
}

function recommendation(a) {
  const [name, note] = KINDS[a.recommendation] || [a.recommendation, ""];
  const here = a.monthly_at_volume;
  const fleet = a.dedicated.always_on_accelerators;
  const be = a.break_even;
  const el = section(`Recommendation for ${a.model}`,
    h("div.stats",
      stat("Recommendation", h("span#advice-verdict", name), note),
      stat("Serverless", dollars(here.serverless_micros), "a month, per token"),
      stat("Dedicated, always on", dollars(here.always_on_micros), fleet === null
        ? "no fleet tried holds your traffic" : `a month: ${int(fleet)} × ${a.accelerator}`),
      stat("Dedicated, scheduled", dollars(here.scheduled_micros), "a month, by the hour of the day"),
      stat("Break-even", be.factor === null ? "—" : `${num(be.factor * perDay(a), 1)} req/day`,
        breakEvenNote(a))),
    h("ul#advice-reasons", a.reasons.map((reason) => h("li", reason))),
    h("p.muted", `Cost model ${a.cost_model}: ${money(a.accelerator_hour_micros)} an ` +
      `accelerator-hour (${a.accelerator}). Window ${when(a.window.since)} to ` +
      `${when(a.window.until)}; monthly figures are per 30 days.`));
  el.id = "advice-recommendation";
  el.dataset.recommendation = a.recommendation;
  el.dataset.model = a.model;
  return el;
}

function traffic(a) {
  const t = a.traffic;
  return section("Traffic", h("div.stats#advice-traffic",
    stat("Requests", int(t.requests), `in ${num(a.window.days)} days`),
    stat("Requests a day", num(t.requests_per_day, 2)),
    stat("Tokens a day", num(t.tokens_per_day, 1), "prompt and completion"),
    stat("Peak hour", `${num(t.peak_hour_ratio, 1)}×`, "the busiest hour over the mean hour"),
    stat("Charged", money(a.serverless_micros), "per token, in the window"),
    stat("Always-on fleet", int(a.dedicated.always_on_accelerators),
      `${a.accelerator}, ${share(a.dedicated.always_on_utilisation)} busy`)));
}

function curveChart(a) {
  const volume = perDay(a);
  const be = a.break_even;
  const markers = [{ name: "volume", x: volume, label: "your volume" }];
  if (be.factor !== null) {
    markers.push({ name: "break-even", x: be.factor * volume,
      y: be.factor * atVolume(a).serverless_monthly_micros,
      label: `break-even ${num(be.factor * volume, 1)} req/day` });
  }
  const chart = logLineChart({ title: "Monthly cost against requests a day (log scale)",
    xs: a.curve.map((p) => p.factor * volume), format: dollars, markers, series: [
      { name: "serverless", values: a.curve.map((p) => p.serverless_monthly_micros) },
      { name: "dedicated", values: a.curve.map((p) => p.dedicated_monthly_micros),
        color: "#f0883e" },
    ] });
  chart.id = "advice-curve";
  return chart;
}

function hoursChart(a) {
  const sizes = a.dedicated.scheduled_accelerators_by_hour;
  const chart = barChart({ title: `Scheduled fleet by hour of the day (UTC), ${a.accelerator}`,
    labels: sizes.map((_, i) => hour(i)),
    series: [{ name: "accelerators", values: sizes.map((n) => n ?? 0), color: "#2da44e" }] });
  chart.id = "advice-hours";
  return chart;
}

function months(a) {
  const el = table([
    { label: "Month", cell: (m) => m.month },
    { label: "Requests", cell: (m) => int(m.requests), num: true },
    { label: "Serverless", cell: (m) => money(m.serverless_micros), num: true },
    { label: "Dedicated, always on", cell: (m) => money(m.dedicated_always_on_micros), num: true },
    { label: "Dedicated, scheduled", cell: (m) => money(m.dedicated_scheduled_micros),
      num: true },
  ], a.months, { rowAttrs: (m) => ({ dataset: { month: m.month } }) });
  el.id = "advice-months";
  return section("Month by month", el, h("p.muted", "Serverless is what was charged; the " +
    "dedicated fleets are billed for the window's hours in each month."));
}

function adviceView(a) {
  const missed = a.dedicated.scheduled_accelerators_by_hour
    .flatMap((n, i) => (n === null ? [hour(i)] : []));
  return [
    recommendation(a),
    traffic(a),
    h("div.charts", curveChart(a), hoursChart(a)),
    missed.length ? notice(`No fleet tried holds the hours ${missed.join(", ")}.`, "warn") : null,
    months(a),
  ];
}

// ---- every model the tenant used ---------------------------------------------------------------

function modelsView(list, open) {
  const empty = list.skipped.length ? "No advice: every model used was skipped."
    : "No requests to advise on in this window.";
  const el = table([
    { label: "Model", cell: (a) =>
      h("button.link", { type: "button", onclick: () => open(a.model) }, a.model) },
    { label: "Cost model", cell: (a) => a.cost_model },
    { label: "Recommendation", cell: (a) => badge(a.recommendation) },
    { label: "Requests a day", cell: (a) => num(a.traffic.requests_per_day, 2), num: true },
    { label: "Serverless a month", cell: (a) => dollars(atVolume(a).serverless_monthly_micros),
      num: true },
    { label: "Dedicated a month", cell: (a) => dollars(atVolume(a).dedicated_monthly_micros),
      num: true },
  ], list.data, { empty, rowAttrs: (a) => ({ dataset: { model: a.model } }) });
  return [section("Models used", el, ...skippedNotes(list.skipped))];
}

// ---- the fleet (platform admin) ----------------------------------------------------------------

function fleetView(summary) {
  const d = summary.dedicated;
  const names = new Map(summary.data.map((r) => [r.tenant_id, r.tenant_name]));
  const rows = table([
    { label: "Tenant", cell: (r) => h("div", r.tenant_name, h("div.muted", r.tenant_id)) },
    { label: "Model", cell: (r) => r.model },
    { label: "Recommendation", cell: (r) => badge(r.recommendation) },
    { label: "Requests a day", cell: (r) => num(r.requests_per_day, 2), num: true },
    { label: "Serverless a month", cell: (r) => dollars(r.serverless_monthly_micros), num: true },
    { label: "Dedicated a month", cell: (r) => dollars(r.dedicated_monthly_micros), num: true },
    { label: "Accelerators", cell: (r) => int(r.always_on_accelerators), num: true },
    { label: "Utilisation", cell: (r) => share(r.utilisation), num: true },
  ], summary.data, { empty: "No tenant has requests to advise on in this window.",
    rowAttrs: (r) => ({ dataset: { tenantId: r.tenant_id, model: r.model } }) });
  return [
    h("div.stats#advice-fleet-totals",
      stat("Better off dedicated", int(d.tenants.length),
        d.tenants.map((id) => names.get(id) || id).join(", ") || "no tenant"),
      stat("Accelerators they need", int(d.accelerators), "always on"),
      stat("Their utilisation", share(d.utilisation), "busy share of those accelerators"),
      stat("Serverless spend moved", dollars(d.serverless_monthly_micros_moved), "a month"),
      stat("Shared tokens moved", share(d.shared_tokens_share_moved),
        "of what the shared replicas serve")),
    rows,
    ...skippedNotes(summary.skipped, true),
  ];
}

function fleetPanel(windowDays) {
  const out = outcome("advice-fleet-result");
  const load = h("button#advice-fleet-load", { type: "button", onclick: async () => {
    load.disabled = true;
    const query = new URLSearchParams({ days: windowDays() });
    await out.run("Replaying every tenant's traffic…",
      async () => fleetView(await api(`/admin/v1/advice?${query}`)));
    load.disabled = false;
  } }, "Load the fleet summary");
  const el = section("Fleet", h("p.muted", "Every tenant's advice for every model it used, " +
    "over the window above, and what moving those better off dedicated would take. It " +
    "replays every tenant's traffic: this may take minutes."), h("div.actions", load), out.el);
  el.id = "advice-fleet";
  return el;
}

// ---- the page ----------------------------------------------------------------------------------

export async function render(root, ctx) {
  const computed = new Map(); // model → its advice, from the latest computations
  const skipped = new Map(); // model → why it has none
  const picker = select("model", [[EVERY, "every model used"]], EVERY);
  picker.id = "advice-model";
  const costModel = input("cost_model", { id: "advice-cost-model", autocomplete: "off",
    placeholder: "cpu or llama3.1-8b@H100-80GB", size: 28 });
  const days = input("days", { id: "advice-days", type: "number", value: 30, min: 0.01,
    max: 366, step: "any", required: true });
  const models = h("div#advice-models");
  const result = outcome("advice-result");

  /** The picker's models: those advised on or skipped, `chosen` selected. */
  function refill(chosen) {
    const names = [...new Set([...computed.keys(), ...skipped.keys()])].sort();
    const options = names.map((m) => [m, skipped.has(m) ? `${m} (skipped)` : m]);
    picker.replaceChildren(...select("model", [[EVERY, "every model used"], ...options], chosen)
      .options);
  }

  function show(model) {
    picker.value = model;
    if (computed.has(model)) {
      result.done(...adviceView(computed.get(model)));
    } else if (skipped.has(model)) {
      result.done(...skippedNotes([{ model, reason: skipped.get(model) }]));
    }
  }
  picker.addEventListener("change", () => show(picker.value));

  async function compute(v) {
    const query = new URLSearchParams({ days: v.days });
    if (v.model) query.set("model", v.model);
    if (v.cost_model.trim()) query.set("cost_model", v.cost_model.trim());
    if (!v.model) models.replaceChildren();
    await result.run("Replaying your traffic…", async () => {
      const answer = await api(`${advicePath(ctx)}?${query}`);
      if (answer.object === "list") {
        computed.clear();
        skipped.clear();
      }
      const list = answer.object === "list" ? answer : { data: [answer], skipped: [] };
      list.data.forEach((a) => { computed.set(a.model, a); skipped.delete(a.model); });
      list.skipped.forEach((s) => skipped.set(s.model, s.reason));
      refill(v.model);
      if (answer.object === "list") models.replaceChildren(...modelsView(answer, show));
      return list.data.length ? adviceView(list.data[0]) : [];
    });
  }

  const el = form([h("div.options",
    field("Model", picker),
    field("Cost model", costModel, "blank: the model's own calibration"),
    field("Days", days, "the window, up to now"))], "Compute", compute, { inline: true });
  el.id = "advice-form";
  el.querySelector("button[type=submit]").id = "advice-compute";

  root.append(h("div.page-head", h("h1", "Advice"), h("span.muted", `tenant ${ctx.tenantId}`)),
    notice("Serverless or dedicated? The advisor replays this tenant's requests in the " +
      "simulator: a dedicated fleet is the smallest that keeps 99% of them within the SLO, " +
      "billed per accelerator-hour from the price book; serverless is what was charged per " +
      "token. Each model takes seconds to a minute (longer windows take longer).", "info"),
    section("Compute", el),
    models,
    result.el,
    ...(ctx.platform ? [fleetPanel(() => days.value)] : []));
}
