// Batches: the tenant's batches (the Batch API). #/batches lists them with their progress and
// runs a JSONL file as a new batch; #/batches/<id> shows one batch's timeline, counts and
// errors, cancels it, and downloads or previews its output and error files (batches_results.js).
import { api, download, upload } from "../api.js";
import { bytes, int, unix } from "../format.js";
import {
  badge, field, guarded, h, input, jsonOrNull, notice, poller, section, select, table, uploadForm,
} from "../ui.js";
import { fileButtons, resultsPanel } from "./batches_results.js";

const ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"];
const WINDOWS = ["24h"];
const LIST = "?limit=100";
const CANCELLABLE = new Set(["validating", "in_progress"]);
const FINISHED = new Set(["completed", "failed", "expired", "cancelled"]);
/** A batch's status timestamps and the status each one marks. */
const TIMES = [["created_at", "validating"], ["in_progress_at", "in_progress"],
  ["finalizing_at", "finalizing"], ["completed_at", "completed"], ["failed_at", "failed"],
  ["cancelling_at", "cancelling"], ["cancelled_at", "cancelled"], ["expired_at", "expired"]];
const EXAMPLE = '{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", ' +
  '"body": {"model": "…", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}}';
const batchPath = (id) => `/v1/batches/${encodeURIComponent(id)}`;

/** Requests done as a bar and "2 completed, 1 failed of 3"; the bar is indeterminate until
 *  the input file has been read. */
function progress(batch) {
  const c = batch.request_counts;
  const done = c.completed + c.failed;
  return h("div.batch-progress",
    h("progress", { max: Math.max(c.total, 1),
      value: batch.status === "validating" ? null : Math.min(done, Math.max(c.total, 1)) }),
    h("span.counts", `${int(c.completed)} completed, ${int(c.failed)} failed of ${int(c.total)}`));
}

function cancelButton(batch, status, done) {
  const open = CANCELLABLE.has(batch.status);
  return h("button.danger", { type: "button", disabled: !open, dataset: { action: "cancel" },
    title: open ? null : `A batch that is ${batch.status.replace("_", " ")} cannot be cancelled.`,
    onclick: guarded(status, async () => {
      if (!confirm(`Cancel ${batch.id}? No more of its requests are sent; the answers so far ` +
        "are kept in its output file.")) return;
      await api(`${batchPath(batch.id)}/cancel`, { method: "POST" });
      await done();
    }) }, "Cancel");
}

// ---- #/batches: the list and a new batch -------------------------------------------------------

function batchTable(batches, status, done) {
  return table([
    { label: "ID", cell: (b) => h("a", { href: `#/batches/${encodeURIComponent(b.id)}` },
      h("code", b.id)) },
    { label: "Endpoint", cell: (b) => h("code", b.endpoint) },
    { label: "Status", cell: (b) => badge(b.status) },
    { label: "Requests", cell: progress },
    { label: "Created", cell: (b) => unix(b.created_at) },
    { label: "Window", cell: (b) => `${b.completion_window}, until ${unix(b.expires_at)}` },
    { label: "", cell: (b) => h("div.row-actions", cancelButton(b, status, done),
      fileButtons(b, status)) },
  ], batches, { empty: "No batches yet: upload a JSONL file above.",
    rowAttrs: (b) => ({ dataset: { batchId: b.id, status: b.status } }) });
}

/** The `url` of the file's first request, to choose the endpoint for the user. */
async function firstUrl(file) {
  const text = await file.slice(0, 64 * 1024).text();
  const line = text.split("\n").find((l) => l.trim());
  try {
    return JSON.parse(line).url;
  } catch {
    return null;
  }
}

/** The metadata textarea's object (or null), refused before the upload when not an object. */
function metadataOf(text) {
  const value = jsonOrNull(text, "Metadata");
  if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
    throw new Error('Metadata: a JSON object of strings, such as {"run": "nightly"}.');
  }
  return value;
}

/** Uploads the file (purpose batch) and creates a batch of it; an upload the Batch API refuses
 *  is deleted again. */
function createForm(onCreated) {
  const chooser = input("file", { type: "file", required: true, id: "batch-file-input" });
  const endpoint = select("endpoint", ENDPOINTS.map((e) => [e, e]), ENDPOINTS[0]);
  endpoint.id = "batch-endpoint";
  const windows = select("completion_window", WINDOWS.map((w) => [w, w]), WINDOWS[0]);
  windows.id = "batch-window";
  const metadata = h("textarea#batch-metadata", { name: "metadata", rows: 1, spellcheck: false,
    placeholder: '{"run": "nightly"}' });
  chooser.addEventListener("change", async () => {
    const url = chooser.files[0] && await firstUrl(chooser.files[0]);
    if (ENDPOINTS.includes(url)) endpoint.value = url;
  });

  const el = uploadForm([field("JSONL file", chooser), field("Endpoint", endpoint),
    field("Completion window", windows), field("Metadata (JSON, optional)", metadata)],
  "Upload and run", async (progress) => {
    const file = chooser.files[0];
    if (!file) return null;
    const meta = metadataOf(metadata.value);
    const created = await upload(file, "batch", (done, total) =>
      progress(done / total, `${file.name}: ${bytes(done)} of ${bytes(total)}`));
    progress(1, `creating a batch of ${created.filename}…`);
    const body = { input_file_id: created.id, endpoint: endpoint.value,
      completion_window: windows.value };
    if (meta !== null) body.metadata = meta;
    let batch;
    try {
      batch = await api("/v1/batches", { method: "POST", body });
    } catch (error) {
      await api(`/v1/files/${created.id}`, { method: "DELETE" }).catch(() => {});
      throw error;
    }
    const chosen = endpoint.value;
    el.reset();
    endpoint.value = chosen;
    await onCreated();
    return `Created ${batch.id} of ${created.filename}.`;
  }, { id: "batch-upload" });
  return el;
}

async function renderBatches(root, ctx) {
  const list = h("div");
  const status = h("div");
  const total = h("span.muted#batches-total");
  const more = h("p.muted", { hidden: true }, "The newest 100 batches are shown.");
  const refresh = poller(ctx, async () => {
    const page = await api(`/v1/batches${LIST}`);
    const n = page.data.length;
    total.textContent = `${n}${page.has_more ? "+" : ""} ${n === 1 ? "batch" : "batches"}`;
    more.hidden = !page.has_more;
    list.replaceChildren(batchTable(page.data, status, refresh));
    return page.data.some((b) => !FINISHED.has(b.status));
  });
  root.append(h("div.page-head", h("h1", "Batches"), total),
    section("Run a batch", createForm(refresh),
      h("p.muted.hint", "One request a line, each with the batch's endpoint as its url: ",
        h("code", EXAMPLE))),
    section("Batches", status, list, more),
    notice(`Batches belong to the signed-in key's tenant (${ctx.me.tenant_id}); each runs in ` +
      "the background at the batch price and writes its answers to an output file and its " +
      "failed requests to an error file.", "info"));
  await refresh();
}

// ---- #/batches/<id>: one batch -----------------------------------------------------------------

/** The input file's object, or a stand-in once the file has been deleted. */
async function inputFile(id) {
  try {
    return await api(`/v1/files/${encodeURIComponent(id)}`);
  } catch (error) {
    if (error.status === 404) return { id, filename: null };
    throw error;
  }
}

function batchCard(batch, file, status) {
  const metadata = Object.entries(batch.metadata || {});
  return h("dl.card",
    h("dt", "ID"), h("dd", h("code", batch.id)),
    h("dt", "Status"), h("dd#batch-status", badge(batch.status)),
    h("dt", "Endpoint"), h("dd", h("code", batch.endpoint)),
    h("dt", "Requests"), h("dd#batch-counts", progress(batch)),
    h("dt", "Input file"), h("dd.row-actions",
      file.filename ?? h("span.muted", "(file deleted)"), h("code", file.id),
      file.filename && h("button.ghost", { type: "button", onclick: guarded(status, () =>
        download(`/v1/files/${file.id}/content`, file.filename)) }, "Download")),
    h("dt", "Completion window"),
    h("dd", `${batch.completion_window}, until ${unix(batch.expires_at)}`),
    h("dt", "Metadata"), h("dd", metadata.length
      ? h("span.attributes", metadata.map(([k, v]) => h("code.attribute", `${k}: ${v}`)))
      : h("span.muted", "—")));
}

/** The statuses the batch has entered, in the order it entered them. */
function timeline(batch) {
  const entered = TIMES.filter(([key]) => batch[key])
    .map(([key, status]) => ({ at: batch[key], status }))
    .sort((a, b) => a.at - b.at);
  return h("ol.timeline#batch-timeline", entered.map((e) =>
    h("li", { dataset: { status: e.status } }, h("span.muted", unix(e.at)), badge(e.status))));
}

/** Why the batch failed as a whole (its input file's bad lines, say); a request's own failure
 *  is a line of the error file instead. */
function errorTable(batch) {
  return table([
    { label: "Line", cell: (e) => (e.line ?? "—"), num: true },
    { label: "Code", cell: (e) => h("code", e.code) },
    { label: "Param", cell: (e) => (e.param ? h("code", e.param) : "—") },
    { label: "Message", cell: (e) => e.message },
  ], batch.errors?.data ?? [], { empty: "No errors." });
}

async function renderBatch(root, ctx, id) {
  const path = batchPath(id);
  const card = h("div");
  const actions = h("div.row-actions#batch-actions");
  const status = h("div");
  const times = h("div");
  const errors = h("div");
  const errorPanel = section("Errors", errors);
  const results = resultsPanel();
  let file = null; // the input file, looked up once
  const refresh = poller(ctx, async () => {
    const batch = await api(path);
    file ??= await inputFile(batch.input_file_id);
    card.replaceChildren(batchCard(batch, file, status));
    actions.replaceChildren(cancelButton(batch, status, refresh), ...fileButtons(batch, status));
    times.replaceChildren(timeline(batch));
    errors.replaceChildren(errorTable(batch));
    errorPanel.hidden = !batch.errors?.data?.length;
    results.update(batch);
    return !FINISHED.has(batch.status);
  });
  root.append(h("div.page-head", h("a", { href: "#/batches" }, "← Batches"), h("h1", id)),
    section("Batch", card, h("div.actions", actions), status),
    section("Timeline", times),
    errorPanel,
    results.panel);
  await refresh();
}

export async function render(root, ctx) {
  const id = location.hash.replace(/^#\/?/, "").split("/")[1];
  if (id) await renderBatch(root, ctx, decodeURIComponent(id));
  else await renderBatches(root, ctx);
}
