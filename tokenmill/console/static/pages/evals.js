// Evaluations: a held-out split scored on one or more models (/admin/v1/evals). #/evals lists
// them with their progress and starts one (a JSONL file uploaded with purpose fine-tune, or a
// file or dataset id); #/evals/<id> shows one evaluation's results, a table per model.
import { api, upload } from "../api.js";
import { int, num, unix } from "../format.js";
import { badge, field, guarded, h, input, notice, poller, section, table, uploadForm } from "../ui.js";

const METRICS = ["exact_match", "contains", "json_valid", "regex", "loss"];
const DEFAULT_METRICS = new Set(["exact_match", "loss"]);
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const evalPath = (id) => `/admin/v1/evals/${encodeURIComponent(id)}`;

function progress(ev) {
  return h("div.batch-progress",
    h("progress", { max: 1, value: ev.status === "queued" ? null : ev.progress }),
    h("span.counts", `${Math.round(ev.progress * 100)}% of ${int(ev.examples)} examples`));
}

function sourceText(source) {
  if (source.file_id) return source.file_id;
  return `${source.dataset}${source.version ? `@${source.version}` : ""} (${source.split})`;
}

function cancelButton(ev, status, done) {
  const open = !FINISHED.has(ev.status);
  return h("button.danger", { type: "button", disabled: !open, dataset: { action: "cancel" },
    onclick: guarded(status, async () => {
      await api(`${evalPath(ev.id)}/cancel`, { method: "POST" });
      await done();
    }) }, "Cancel");
}

function evalTable(evals, status, done) {
  return table([
    { label: "ID", cell: (e) => h("a", { href: `#/evals/${encodeURIComponent(e.id)}` },
      h("code", e.id)) },
    { label: "Status", cell: (e) => badge(e.status) },
    { label: "Progress", cell: progress },
    { label: "Models", cell: (e) => e.models.join(", ") },
    { label: "Metrics", cell: (e) => e.metrics.join(", ") },
    { label: "Data", cell: (e) => h("code", sourceText(e.source)) },
    { label: "Created", cell: (e) => unix(e.created_at) },
    { label: "", cell: (e) => cancelButton(e, status, done) },
  ], evals, { empty: "No evaluations yet: start one above.",
    rowAttrs: (e) => ({ dataset: { evalId: e.id, status: e.status } }) });
}

/** Each model's figures: a row per metric (loss with its perplexity). */
export function resultTable(ev) {
  const rows = [];
  for (const result of ev.results) {
    for (const metric of ev.metrics) {
      const figure = result[metric] || {};
      rows.push({ model: result.model, metric, figure, errors: result.errors });
    }
  }
  return table([
    { label: "Model", cell: (r) => h("code", r.model) },
    { label: "Metric", cell: (r) => r.metric },
    { label: "Score", num: true, cell: (r) => (r.figure.mean === null || r.figure.mean === undefined
      ? "—" : num(r.figure.mean, 4)) },
    { label: "Perplexity", num: true, cell: (r) => (r.figure.perplexity ? num(r.figure.perplexity, 2) : "—") },
    { label: "Count", num: true, cell: (r) => int(r.figure.count) },
    { label: "Errors", num: true, cell: (r) => int(r.errors) },
  ], rows, { empty: "No model has finished yet.",
    rowAttrs: (r) => ({ dataset: { model: r.model, metric: r.metric } }) });
}

function metricBoxes() {
  return h("span.attributes#eval-metrics", METRICS.map((m) => h("label",
    h("input", { type: "checkbox", name: "metric", value: m, checked: DEFAULT_METRICS.has(m) }),
    ` ${m}`)));
}

function startForm(onCreated) {
  const chooser = input("file", { type: "file", id: "eval-file" });
  const source = input("source", { id: "eval-source", placeholder: "file-… or ds-…[@version]" });
  const models = input("models", { id: "eval-models", required: true,
    placeholder: "model, ft:model:…" });
  const regex = input("regex", { id: "eval-regex", placeholder: "^\\{.*\\}$" });
  const limit = input("limit", { id: "eval-limit", type: "number", min: 1 });
  const boxes = metricBoxes();
  const el = uploadForm([field("JSONL file (purpose fine-tune)", chooser),
    field("or a file / dataset id", source), field("Models (comma-separated)", models),
    field("Metrics", boxes), field("Regex (for the regex metric)", regex),
    field("At most (examples)", limit)],
  "Start evaluation", async (progressTo) => {
    const body = { models: models.value.split(",").map((m) => m.trim()).filter(Boolean),
      metrics: [...boxes.querySelectorAll("input:checked")].map((b) => b.value) };
    if (regex.value) body.regex = regex.value;
    if (limit.value) body.limit = Number(limit.value);
    const file = chooser.files[0];
    const id = source.value.trim();
    if (file) {
      const created = await upload(file, "fine-tune", (done, total) =>
        progressTo(done / total, `${file.name}: uploading`));
      body.file_id = created.id;
    } else if (id.startsWith("file-")) {
      body.file_id = id;
    } else if (id) {
      const [dataset, version] = id.split("@");
      body.dataset = dataset;
      if (version) body.version = Number(version);
    } else {
      throw new Error("Choose a file, or give a file or dataset id.");
    }
    const ev = await api("/admin/v1/evals", { method: "POST", body });
    el.reset();
    await onCreated();
    return `Started ${ev.id}.`;
  }, { id: "eval-start" });
  return el;
}

async function renderEvals(root, ctx) {
  const list = h("div");
  const status = h("div");
  const total = h("span.muted#evals-total");
  const refresh = poller(ctx, async () => {
    const page = await api("/admin/v1/evals?limit=100");
    const n = page.data.length;
    total.textContent = `${n} ${n === 1 ? "evaluation" : "evaluations"}`;
    list.replaceChildren(evalTable(page.data, status, refresh));
    return page.data.some((e) => !FINISHED.has(e.status));
  });
  root.append(h("div.page-head", h("h1", "Evaluations"), total),
    section("Evaluate", startForm(refresh),
      h("p.muted.hint", "Each example is a fine-tuning row: the reference is the last " +
        "assistant turn (or the completion), the prompt is what comes before it.")),
    section("Evaluations", status, list),
    notice("Every call is made through the platform as your key and billed like any other. " +
      "The latest results show on each model's card.", "info"));
  await refresh();
}

async function renderEval(root, ctx, id) {
  const card = h("div");
  const results = h("div#eval-results");
  const status = h("div");
  const refresh = poller(ctx, async () => {
    const ev = await api(evalPath(id));
    card.replaceChildren(h("dl.card",
      h("dt", "Status"), h("dd#eval-status", badge(ev.status)),
      h("dt", "Progress"), h("dd", progress(ev)),
      h("dt", "Data"), h("dd", h("code", sourceText(ev.source))),
      h("dt", "Published"), h("dd", ev.published ? "yes" : "no"),
      ev.error && h("dt", "Error"), ev.error && h("dd#eval-error", ev.error)),
    h("div.actions", cancelButton(ev, status, refresh)));
    results.replaceChildren(resultTable(ev));
    return !FINISHED.has(ev.status);
  });
  root.append(h("div.page-head", h("a", { href: "#/evals" }, "← Evaluations"), h("h1", id)),
    section("Evaluation", card, status), section("Results", results));
  await refresh();
}

export async function render(root, ctx) {
  const id = location.hash.replace(/^#\/?/, "").split("/")[1];
  if (id) await renderEval(root, ctx, decodeURIComponent(id));
  else await renderEvals(root, ctx);
}
