// Datasets: the dataset library (/admin/v1/datasets). #/datasets lists the tenant's datasets
// and those published to every tenant, and makes a version from an uploaded JSONL file;
// #/datasets/<id>[/<version>] shows a version's card and pages through its rows, split by split.
import { api, upload } from "../api.js";
import { bytes, int, unix } from "../format.js";
import { badge, field, guarded, h, input, notice, section, select, table, uploadForm } from "../ui.js";

const BASE = "/admin/v1/datasets";
const PAGE_ROWS = 10;
const TUNABLE = new Set(["chat", "completion"]);

const datasetPath = (id) => `${BASE}/${encodeURIComponent(id)}`;
const datasetLink = (d, label = d.name) =>
  h("a", { href: `#/datasets/${encodeURIComponent(d.id)}` }, label);

/** The models whose tokenizer may count a dataset: the library's chat and completion models. */
async function countingModels() {
  const library = (await api("/admin/v1/models")).data;
  return library.filter((m) => TUNABLE.has(m.task) && !m.id.startsWith("ft:")).map((m) => m.id);
}

function createForm(models, onCreated) {
  const file = input("file", { type: "file", required: true, id: "ds-file-input",
    accept: ".jsonl,application/jsonl" });
  const model = select("model", models.map((m) => [m, m]), models[0]);
  model.id = "ds-model";
  const name = input("name", { id: "ds-name", placeholder: "the file's name", maxLength: 100,
    pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*" });
  const licence = input("licence", { id: "ds-licence", placeholder: "e.g. CC-BY-4.0" });
  const fraction = input("validation_fraction", { id: "ds-fraction", type: "number", min: 0,
    max: 0.9, step: 0.05, value: "0.1" });
  const el = uploadForm([field("JSONL file", file), field("Tokenizer of", model),
    field("Name", name), field("Licence", licence), field("Held out", fraction)],
  "Upload and add", async (progress) => {
    const chosen = file.files[0];
    if (!chosen) return null;
    const uploaded = await upload(chosen, "fine-tune", (done, total) =>
      progress(done / total, `${bytes(done)} of ${bytes(total)}`));
    progress(1, "validating and counting tokens…");
    const body = { file_id: uploaded.id, model: model.value,
      validation_fraction: Number(fraction.value || 0) };
    if (name.value.trim()) body.name = name.value.trim();
    if (licence.value.trim()) body.licence = licence.value.trim();
    const made = await api(BASE, { method: "POST", body });
    el.reset();
    model.value = body.model;
    await onCreated();
    const word = made.created ? "Added" : "Already there:";
    return `${word} ${made.name} version ${made.version.version} (${int(made.version.rows)} rows).`;
  }, { id: "ds-create" });
  return el;
}

function datasetTable(datasets, ctx) {
  return table([
    { label: "Name", cell: (d) => datasetLink(d) },
    { label: "ID", cell: (d) => h("code", d.id) },
    { label: "Owner", cell: (d) => (d.owner === ctx.me.tenant_id ? "yours" : h("code", d.owner)) },
    { label: "Latest", cell: (d) => (d.latest_version ? `v${d.latest_version.version}` : "—") },
    { label: "Rows", cell: (d) => int(d.latest_version?.rows), num: true },
    { label: "Tokens", cell: (d) => int(d.latest_version?.tokens), num: true },
    { label: "", cell: (d) => (d.published ? badge("published", "succeeded") : "") },
  ], datasets, { empty: "No datasets yet: add a JSONL file of examples above.",
    rowAttrs: (d) => ({ dataset: { datasetId: d.id } }) });
}

async function renderList(root, ctx) {
  const list = h("div");
  const total = h("span.muted#ds-total");
  async function draw() {
    const datasets = (await api(BASE)).data;
    total.textContent = `${datasets.length} ${datasets.length === 1 ? "dataset" : "datasets"}`;
    list.replaceChildren(datasetTable(datasets, ctx));
  }
  const models = await countingModels();
  root.append(h("div.page-head", h("h1", "Datasets"), total),
    section("Add a dataset version", models.length ? createForm(models, draw)
      : h("p.empty", "The library has no chat or completion model to count tokens with.")),
    section("Datasets", list),
    notice("A version is immutable and named by its content's sha256: the same file again is " +
      "the same version. Versions are the tenant's own until a platform admin publishes one; " +
      "fine-tuning jobs keep their training files here too.", "info"));
  await draw();
}

function versionCard(card) {
  const split = card.split.method === "file" ? `validation file ${card.split.validation_file}`
    : `${Math.round(card.split.validation_fraction * 100)}% held out, seed ${card.split.seed}`;
  const splits = card.splits;
  return h("dl.card#ds-card",
    h("dt", "Version"), h("dd", `v${card.version} `, card.published ? badge("published", "succeeded") : ""),
    h("dt", "Format"), h("dd", card.format === "chat" ? "chat" : "prompt / completion"),
    h("dt", "Rows"), h("dd#ds-card-rows", int(card.rows)),
    h("dt", "Tokens"), h("dd", `${int(card.tokens)} (counted with `, h("code", card.tokenizer), ")"),
    h("dt", "Train"), h("dd", `${int(splits.train.rows)} rows, ${int(splits.train.tokens)} tokens`),
    h("dt", "Validation"),
    h("dd", `${int(splits.validation.rows)} rows, ${int(splits.validation.tokens)} tokens`),
    h("dt", "Split"), h("dd", split),
    h("dt", "Licence"), h("dd", card.licence || "—"),
    h("dt", "Source"), h("dd", card.source || "—"),
    h("dt", "SHA-256"), h("dd", h("code#ds-sha256", card.sha256)),
    h("dt", "Parquet"), h("dd", bytes(card.size_bytes)),
    h("dt", "Created"), h("dd", unix(card.created_at)));
}

/** An example as its turns: "role: text" for chat, prompt then completion otherwise. */
function exampleText(example) {
  if (Array.isArray(example.messages)) {
    return example.messages.map((m) => h("div.turn", h("strong", `${m.role}: `),
      typeof m.content === "string" ? m.content : JSON.stringify(m.content ?? m.tool_calls)));
  }
  return [h("div.turn", h("strong", "prompt: "), example.prompt),
    h("div.turn", h("strong", "completion: "), example.completion)];
}

/** The paged preview of a version's rows, one split at a time. */
function rowsPanel(path, card) {
  let split = "train";
  let offset = 0;
  const body = h("div#ds-rows");
  const where = h("span.muted#ds-page");
  const prev = h("button.ghost#ds-prev", { type: "button" }, "← Previous");
  const next = h("button.ghost#ds-next", { type: "button" }, "Next →");
  const tabs = h("div.row-actions#ds-split", ["train", "validation"].map((s) =>
    h("button.ghost", { type: "button", dataset: { split: s },
      onclick: () => { split = s; offset = 0; draw(); } },
    `${s} (${int(card.splits[s].rows)})`)));
  async function draw() {
    const page = await api(`${path}/rows?split=${split}&offset=${offset}&limit=${PAGE_ROWS}`);
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.split === split);
    const first = page.data.length ? offset + 1 : 0;
    where.textContent = `${split}: rows ${first} to ${offset + page.data.length} of ${page.total}`;
    prev.disabled = offset === 0;
    next.disabled = !page.has_more;
    body.replaceChildren(table([
      { label: "#", cell: (r) => String(r.index + 1), num: true },
      { label: "Line", cell: (r) => String(r.line), num: true },
      { label: "Example", cell: (r) => h("div.example", exampleText(r.example)) },
      { label: "Tokens", cell: (r) => int(r.tokens), num: true },
    ], page.data, { empty: `The ${split} split is empty.`,
      rowAttrs: (r) => ({ dataset: { line: r.line, index: r.index } }) }));
  }
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE_ROWS); draw(); });
  next.addEventListener("click", () => { offset += PAGE_ROWS; draw(); });
  return { panel: section("Rows", tabs, body, h("div.row-actions", prev, next, where)), draw };
}

async function renderDataset(root, ctx, id, wanted) {
  const dataset = await api(datasetPath(id));
  const versions = dataset.versions;
  const back = h("a", { href: "#/datasets" }, "← Datasets");
  if (!versions.length) {
    root.append(back, h("h1", dataset.name), h("p.empty", "This dataset has no versions left."));
    return;
  }
  const card = versions.find((v) => String(v.version) === wanted) || versions.at(-1);
  const path = `${datasetPath(id)}/versions/${card.version}`;
  const status = h("div");
  const actions = h("div.row-actions#ds-actions");
  if (ctx.platform && !card.published) {
    actions.append(h("button#ds-publish", { type: "button", onclick: guarded(status, async () => {
      await api(`${path}/publish`, { method: "POST" });
      await rerender();
    }) }, "Publish to every tenant"));
  }
  if (dataset.owner === ctx.me.tenant_id || ctx.platform) {
    actions.append(h("button.danger#ds-delete", { type: "button",
      disabled: card.published && !ctx.platform, onclick: guarded(status, async () => {
        if (!confirm(`Delete ${dataset.name} version ${card.version} and its rows?`)) return;
        await api(path, { method: "DELETE" });
        location.hash = `#/datasets/${encodeURIComponent(id)}`;
        await rerender();
      }) }, "Delete this version"));
  }
  async function rerender() {
    root.replaceChildren();
    await renderDataset(root, ctx, id, String(card.version));
  }
  const list = h("div.row-actions#ds-versions", versions.map((v) =>
    h("a", { href: `#/datasets/${encodeURIComponent(id)}/${v.version}`,
      dataset: { version: v.version }, class: v.version === card.version ? "active" : null },
    `v${v.version}`)));
  const rows = rowsPanel(path, card);
  root.append(back, h("div.page-head", h("h1", dataset.name), h("code", dataset.id)),
    section("Versions", list), section("Card", versionCard(card), actions, status), rows.panel);
  await rows.draw();
}

export async function render(root, ctx) {
  const [, id, version] = location.hash.replace(/^#\/?/, "").split("/");
  if (id) await renderDataset(root, ctx, decodeURIComponent(id), version);
  else await renderList(root, ctx);
}
