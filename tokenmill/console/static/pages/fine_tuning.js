// Fine-tuning: the tenant's fine-tuning jobs (OpenAI's fine-tuning API). #/fine-tuning lists
// them and starts one on an uploaded JSONL file (purpose fine-tune) and a base model;
// #/fine-tuning/<id> shows one job (fine_tuning_job.js).
import { api, upload } from "../api.js";
import { bytes, int, unix } from "../format.js";
import { badge, field, h, input, notice, poller, section, select, table, uploadForm } from "../ui.js";
import { FINISHED, jobLink, renderJob } from "./fine_tuning_job.js";

const LIST = "/v1/fine_tuning/jobs?limit=100";
const TUNABLE = new Set(["chat", "completion"]);
const EXAMPLE = '{"messages": [{"role": "user", "content": "What colour is the sky?"}, ' +
  '{"role": "assistant", "content": "Blue."}]}';

/** The base models this key may fine-tune: the library's chat and completion models it sees,
 *  fine-tunes left out. */
async function baseModels() {
  const [visible, library] = await Promise.all([
    api("/v1/models").then((r) => new Set(r.data.map((m) => m.id))),
    api("/admin/v1/models").then((r) => r.data),
  ]);
  return library.filter((m) => TUNABLE.has(m.task) && visible.has(m.id) && !m.id.startsWith("ft:"))
    .map((m) => m.id);
}

function jobTable(jobs) {
  return table([
    { label: "ID", cell: jobLink },
    { label: "Status", cell: (j) => badge(j.status) },
    { label: "Model", cell: (j) => h("code", j.model) },
    { label: "Fine-tuned model", cell: (j) => (j.fine_tuned_model ? h("code", j.fine_tuned_model)
      : h("span.muted", "—")) },
    { label: "Trained tokens", cell: (j) => int(j.trained_tokens), num: true },
    { label: "Created", cell: (j) => unix(j.created_at) },
  ], jobs, { empty: "No fine-tuning jobs yet: upload a JSONL file of examples above.",
    rowAttrs: (j) => ({ dataset: { jobId: j.id, status: j.status } }) });
}

/** Uploads the files (purpose fine-tune) and creates a job on them; uploads the API refuses
 *  a job for are deleted again. */
function createForm(models, onCreated) {
  const training = input("file", { type: "file", required: true, id: "ft-file-input",
    accept: ".jsonl,application/jsonl" });
  const validation = input("validation", { type: "file", id: "ft-validation-input",
    accept: ".jsonl,application/jsonl" });
  const model = select("model", models.map((m) => [m, m]), models[0]);
  model.id = "ft-model";
  const suffix = input("suffix", { id: "ft-suffix", maxLength: 40, pattern: "[A-Za-z0-9_\\-]+",
    placeholder: "optional", title: "Up to 40 letters, digits, - or _" });
  const epochs = input("n_epochs", { id: "ft-epochs", type: "number", min: 1, max: 50,
    placeholder: "auto" });

  const el = uploadForm([field("Training file (JSONL)", training), field("Base model", model),
    field("Suffix", suffix), field("Epochs", epochs),
    field("Validation file (optional)", validation)],
  "Upload and fine-tune", async (progress) => {
    const files = [training.files[0], validation.files[0]].filter(Boolean);
    if (!files.length) return null;
    const uploaded = [];
    for (const file of files) {
      uploaded.push(await upload(file, "fine-tune", (done, total) =>
        progress(done / total, `${file.name}: ${bytes(done)} of ${bytes(total)}`)));
    }
    progress(1, "creating the job…");
    const hyperparameters = epochs.value ? { n_epochs: Number(epochs.value) } : {};
    const body = { model: model.value, training_file: uploaded[0].id,
      method: { type: "supervised", supervised: { hyperparameters } } };
    if (uploaded[1]) body.validation_file = uploaded[1].id;
    if (suffix.value.trim()) body.suffix = suffix.value.trim();
    let job;
    try {
      job = await api("/v1/fine_tuning/jobs", { method: "POST", body });
    } catch (error) {
      await Promise.all(uploaded.map((f) =>
        api(`/v1/files/${f.id}`, { method: "DELETE" }).catch(() => {})));
      throw error;
    }
    const chosen = model.value;
    el.reset();
    model.value = chosen;
    await onCreated();
    return `Created ${job.id} on ${job.model}.`;
  }, { id: "ft-create" });
  return el;
}

async function renderJobs(root, ctx) {
  const list = h("div");
  const total = h("span.muted#ft-total");
  const more = h("p.muted", { hidden: true }, "The newest 100 jobs are shown.");
  const refresh = poller(ctx, async () => {
    const page = await api(LIST);
    const n = page.data.length;
    total.textContent = `${n}${page.has_more ? "+" : ""} ${n === 1 ? "job" : "jobs"}`;
    more.hidden = !page.has_more;
    list.replaceChildren(jobTable(page.data));
    return page.data.some((j) => !FINISHED.has(j.status) && j.status !== "paused");
  });
  const models = await baseModels();
  root.append(h("div.page-head", h("h1", "Fine-tuning"), total),
    section("Fine-tune a model", models.length
      ? createForm(models, refresh)
      : h("p.empty", "This key sees no chat or completion model to fine-tune."),
    h("p.muted.hint", "One chat example a line, at least 10: ", h("code", EXAMPLE))),
    section("Jobs", list, more),
    notice(`Jobs belong to the signed-in key's tenant (${ctx.me.tenant_id}). A job checks its ` +
      "files, holds its estimated cost against the tenant's credit and trains in the " +
      "background; the trained tokens are billed at the base model's training price, and the " +
      "new model is the tenant's own, served by the base model's replicas.", "info"));
  await refresh();
}

export async function render(root, ctx) {
  const id = location.hash.replace(/^#\/?/, "").split("/")[1];
  if (id) await renderJob(root, ctx, decodeURIComponent(id));
  else await renderJobs(root, ctx);
}
