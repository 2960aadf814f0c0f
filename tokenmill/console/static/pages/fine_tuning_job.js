// One fine-tuning job (#/fine-tuning/<id>): its card, its progress while it runs, cancel, pause
// and resume by its status, merging a succeeded job's fine-tune into a standalone model, the
// validation report of a file it refused, its loss curve (train loss a step from its metrics
// events, valid loss from its checkpoints), checkpoints and events.
import { api } from "../api.js";
import { stepChart } from "../charts.js";
import { int, money, num, unix } from "../format.js";
import { badge, guarded, h, notice, poller, section, table } from "../ui.js";

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const EVENT_PAGE = 100; // the API's largest page
const MAX_EVENTS = 10_000; // read at most this many, newest first
const SHOWN_EVENTS = 50;
const INVALID_FILE = /^invalid_(training|validation)_file$/;
/** What each action does and the statuses it is offered in. */
const ACTIONS = [
  { name: "pause", label: "Pause", open: new Set(["queued", "running"]), kind: "ghost",
    ask: "Pause {id}? A running job saves a checkpoint and stops; resume goes on from it." },
  { name: "resume", label: "Resume", open: new Set(["paused"]), kind: "ghost" },
  { name: "cancel", label: "Cancel", open: new Set(["validating_files", "queued", "running",
    "paused"]), kind: "danger",
  ask: "Cancel {id}? It stops within a training step; the tokens trained so far are billed." },
];

export const jobPath = (id) => `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`;

export const jobLink = (job) =>
  h("a", { href: `#/fine-tuning/${encodeURIComponent(job.id)}` }, h("code", job.id));

/** A job's events, newest first, read page by page down to the first one already known: a
 *  poll costs one request while nothing new happened. */
function eventLog(path) {
  const byId = new Map();
  return {
    async update() {
      let after = null;
      for (let read = 0; read < MAX_EVENTS; read += EVENT_PAGE) {
        const query = `?limit=${EVENT_PAGE}${after ? `&after=${encodeURIComponent(after)}` : ""}`;
        const page = await api(`${path}/events${query}`);
        const fresh = page.data.filter((e) => !byId.has(e.id));
        fresh.forEach((e) => byId.set(e.id, e));
        if (!page.has_more || fresh.length < page.data.length || !page.data.length) break;
        after = page.data.at(-1).id;
      }
      return [...byId.values()].sort((a, b) => eventNumber(b) - eventNumber(a));
    },
  };
}

const eventNumber = (e) => Number(String(e.id).replace(/\D/g, "")) || 0;

const metricsOf = (events) => events.filter((e) => e.type === "metrics" && e.data?.step);

function jobCard(job) {
  const hp = job.hyperparameters || {};
  const usage = job.usage_metrics || {};
  const file = (id) => (id ? h("code", id) : h("span.muted", "—"));
  return h("dl.card",
    h("dt", "ID"), h("dd", h("code", job.id)),
    h("dt", "Status"), h("dd#ft-status", badge(job.status)),
    h("dt", "Base model"), h("dd", h("code", job.model)),
    h("dt", "Fine-tuned model"), h("dd#ft-model-name", file(job.fine_tuned_model)),
    h("dt", "Training file"), h("dd", file(job.training_file)),
    h("dt", "Validation file"), h("dd", file(job.validation_file)),
    h("dt", "Hyperparameters"), h("dd", h("span.attributes",
      h("code.attribute", `epochs: ${hp.n_epochs ?? "auto"}`),
      h("code.attribute", `batch size: ${hp.batch_size ?? "auto"}`),
      h("code.attribute", `learning rate × ${hp.learning_rate_multiplier ?? "auto"}`),
      h("code.attribute", `seed: ${job.seed}`))),
    h("dt", "Trained tokens"), h("dd#ft-trained", usage.estimated_trained_tokens
      ? `${int(job.trained_tokens ?? 0)} of about ${int(usage.estimated_trained_tokens)}`
      : int(job.trained_tokens)),
    h("dt", "Cost"), h("dd#ft-cost", usage.cost_micros !== null && usage.cost_micros !== undefined
      ? money(usage.cost_micros)
      : (usage.reserved_micros ? `${money(usage.reserved_micros)} held` : "—")),
    h("dt", "Created"), h("dd", unix(job.created_at)),
    h("dt", job.finished_at ? "Finished" : "Estimated finish"),
    h("dd", unix(job.finished_at ?? job.estimated_finish)));
}

/** Steps done of all from the newest metrics event; indeterminate before the first step. */
function progress(job, metrics) {
  const last = metrics[0]?.data;
  const waiting = { validating_files: "checking the files…", queued: "waiting for a trainer…" };
  return h("div.batch-progress#ft-progress",
    h("progress", { max: last ? Math.max(last.total_steps, 1) : 1, value: last ? last.step : null }),
    h("span.counts", last ? `step ${int(last.step)} of ${int(last.total_steps)}`
      : (waiting[job.status] || job.status.replace("_", " "))));
}

function actionButtons(job, status, done) {
  return ACTIONS.map((a) => {
    const open = a.open.has(job.status);
    return h(`button.${a.kind}`, { type: "button", disabled: !open, dataset: { action: a.name },
      title: open ? null : `A job that is ${job.status.replace("_", " ")} cannot ${a.name}.`,
      onclick: guarded(status, async () => {
        if (a.ask && !confirm(a.ask.replace("{id}", job.id))) return;
        const after = await api(`${jobPath(job.id)}/${a.name}`, { method: "POST" });
        if (after.status === job.status && a.name !== "resume") {
          status.replaceChildren(notice(`Asked to ${a.name}: the trainer stops within a step.`,
            "info"));
        }
        await done();
      }) }, a.label);
  });
}

/** A succeeded job's fine-tune merged into its base: a standalone model of the tenant (an
 *  admin's key), to give a dedicated deployment. Merging again answers with the same model. */
function mergeButton(job, status) {
  if (job.status !== "succeeded" || !job.fine_tuned_model) return [];
  const model = job.fine_tuned_model;
  return [h("button.ghost#ft-merge", { type: "button",
    title: "Write the adapter into a copy of the base model (F16 GGUF) for a dedicated deployment.",
    onclick: guarded(status, async () => {
      status.replaceChildren(notice(`Merging ${model} into its base…`, "info"));
      const merged = await api(`/admin/v1/models/${encodeURIComponent(model)}/merge`,
        { method: "POST" });
      const size = merged.card?.file_size_bytes;
      status.replaceChildren(h("div.notice.info#ft-merged", "Merged: ", h("code", merged.id),
        size ? ` (${int(size)} bytes, ${merged.card.quantization ?? "F16"})` : "",
        ". Deploy it from the Deployments page."));
    }) }, "Merge into a standalone model")];
}

/** Why the job failed; a file it refused as a table of its problems, read from the error's
 *  message ("… is not valid: line 3: …; line 7: …; 9 valid examples, at least 10 needed."). */
function failure(job) {
  const error = job.error;
  if (!error?.message) return null;
  const which = INVALID_FILE.exec(error.code || "");
  if (!which) return notice(`${error.message} (${error.code})`);
  const [head, rest = ""] = error.message.split(/ is not valid: /, 2);
  const lines = rest.replace(/\.$/, "").split("; ").map((part) => {
    const found = /^line (\d+): (.*)$/s.exec(part);
    return found ? { line: Number(found[1]), problem: found[2] } : { line: null, problem: part };
  });
  return h("div#ft-validation",
    h("p", h("strong", `The ${which[1]} file is not valid`), " ",
      h("span.muted", `(${head.replace(/^The \w+ file /, "")})`)),
    table([
      { label: "Line", cell: (l) => (l.line ?? "—"), num: true },
      { label: "Problem", cell: (l) => l.problem },
    ], lines, { rowAttrs: (l) => ({ dataset: { line: l.line ?? "" } }) }),
    h("p.muted.hint", `Code ${error.code}. Fix the lines and upload the file again.`));
}

const metric = (m, name) => num(m?.[name] ?? null, 4);

function lossChart(metrics, checkpoints) {
  const train = metrics.filter((e) => typeof e.data.train_loss === "number")
    .map((e) => [e.data.step, e.data.train_loss]);
  const valid = checkpoints.map((c) => [c.step_number, c.metrics.valid_loss
    ?? c.metrics.full_valid_loss]).filter(([, v]) => typeof v === "number");
  if (!train.length && !valid.length) return h("p.empty", "No training step yet.");
  const series = [{ name: "train loss", points: train }];
  if (valid.length) series.push({ name: "valid loss", points: valid });
  return stepChart({ title: "Loss by step", series, format: (v) => num(v, 2), width: 960,
    height: 260 });
}

function checkpointTable(checkpoints) {
  return table([
    { label: "Step", cell: (c) => int(c.step_number), num: true },
    { label: "Train loss", cell: (c) => metric(c.metrics, "train_loss"), num: true },
    { label: "Valid loss", cell: (c) => metric(c.metrics, "valid_loss"), num: true },
    { label: "Train accuracy", cell: (c) => metric(c.metrics, "train_mean_token_accuracy"),
      num: true },
    { label: "Valid accuracy", cell: (c) => metric(c.metrics, "valid_mean_token_accuracy"),
      num: true },
    { label: "Model", cell: (c) => (c.fine_tuned_model_checkpoint
      ? h("code", c.fine_tuned_model_checkpoint) : h("span.muted", "—")) },
    { label: "Saved", cell: (c) => unix(c.created_at) },
  ], checkpoints, { empty: "No checkpoint yet: one is saved each epoch.",
    rowAttrs: (c) => ({ dataset: { step: c.step_number } }) });
}

function eventTable(events) {
  return table([
    { label: "Time", cell: (e) => unix(e.created_at) },
    { label: "Level", cell: (e) => badge(e.type === "metrics" ? "metrics" : e.level) },
    { label: "Message", cell: (e) => e.message },
  ], events.slice(0, SHOWN_EVENTS), { empty: "No events yet: the job waits for a worker.",
    rowAttrs: (e) => ({ dataset: { type: e.type } }) });
}

export async function renderJob(root, ctx, id) {
  const path = jobPath(id);
  const log = eventLog(path);
  const card = h("div");
  const bar = h("div");
  const actions = h("div.row-actions#ft-actions");
  const status = h("div");
  const error = h("div");
  const errorPanel = section("Why it failed", error);
  const chart = h("div#ft-loss");
  const points = h("div#ft-checkpoints");
  const events = h("div#ft-events");
  const refresh = poller(ctx, async () => {
    const [job, all, checkpoints] = await Promise.all([
      api(path), log.update(), api(`${path}/checkpoints?limit=100`).then((r) => r.data)]);
    const metrics = metricsOf(all);
    const busy = !FINISHED.has(job.status) && job.status !== "paused";
    card.replaceChildren(jobCard(job));
    bar.replaceChildren(...(busy ? [progress(job, metrics)] : []));
    actions.replaceChildren(...actionButtons(job, status, refresh), ...mergeButton(job, status));
    const why = failure(job);
    error.replaceChildren(...(why ? [why] : []));
    errorPanel.hidden = !why;
    chart.replaceChildren(lossChart(metrics, checkpoints));
    points.replaceChildren(checkpointTable(checkpoints));
    events.replaceChildren(eventTable(all));
    return busy;
  });
  root.append(h("div.page-head", h("a", { href: "#/fine-tuning" }, "← Fine-tuning"), h("h1", id)),
    section("Job", card, bar, h("div.actions", actions), status),
    errorPanel,
    section("Loss", chart),
    section("Checkpoints", points),
    section(`Events (the newest ${SHOWN_EVENTS})`, events));
  await refresh();
}
