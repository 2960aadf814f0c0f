// Knowledge: the tenant's vector stores (the Vector Stores API). #/knowledge lists, creates and
// deletes stores; #/knowledge/<id> shows one store's files as they are indexed, takes uploads
// with progress, shows a file's indexed text and its chunks (knowledge_chunks.js), and searches
// it (knowledge_search.js).
import { api, upload } from "../api.js";
import { bytes, int, unix } from "../format.js";
import {
  badge, field, form, guarded, h, input, intOrNull, jsonOrNull, notice, poller, section, table,
  uploadForm,
} from "../ui.js";
import { chunksPanel } from "./knowledge_chunks.js";
import { attributeList, searchPanel } from "./knowledge_search.js";

const LIST = "?limit=100";
const storePath = (id) => `/v1/vector_stores/${encodeURIComponent(id)}`;

/** "3 files: 2 completed, 1 in progress, 0 failed" of a file_counts object. */
function counts(c) {
  const parts = [`${int(c.completed)} completed`, `${int(c.in_progress)} in progress`,
    `${int(c.failed)} failed`];
  if (c.cancelled) parts.push(`${int(c.cancelled)} cancelled`);
  return `${int(c.total)} ${c.total === 1 ? "file" : "files"}: ${parts.join(", ")}`;
}

// ---- #/knowledge: the stores -------------------------------------------------------------------

function storeTable(stores, status, done) {
  return table([
    { label: "Name", cell: (s) => h("a", { href: `#/knowledge/${encodeURIComponent(s.id)}` },
      s.name || "(unnamed)") },
    { label: "ID", cell: (s) => h("code", s.id) },
    { label: "Status", cell: (s) => badge(s.status) },
    { label: "Files", cell: (s) => counts(s.file_counts) },
    { label: "Size", cell: (s) => bytes(s.usage_bytes), num: true },
    { label: "Created", cell: (s) => unix(s.created_at) },
    { label: "Expires", cell: (s) => unix(s.expires_at) },
    { label: "", cell: (s) => h("div.row-actions",
      h("a", { href: `#/knowledge/${encodeURIComponent(s.id)}` }, "Open"),
      h("button.danger", { type: "button", onclick: guarded(status, async () => {
        if (!confirm(`Delete ${s.name || s.id}? Its index goes; the uploaded files stay.`)) return;
        await api(storePath(s.id), { method: "DELETE" });
        await done();
      }) }, "Delete")) },
  ], stores, { empty: "No vector stores yet.", rowAttrs: (s) => ({ dataset: { storeId: s.id } }) });
}

function createForm() {
  const name = input("name", { required: true, id: "store-name", placeholder: "handbook",
    autocomplete: "off" });
  const days = input("expires_days", { type: "number", min: 1, max: 365, id: "store-expires",
    placeholder: "never" });
  return form([field("Name", name), field("Expires after days idle", days)], "Create",
    async (values) => {
      const body = { name: values.name.trim() };
      const expires = intOrNull(values.expires_days);
      if (expires !== null) body.expires_after = { anchor: "last_active_at", days: expires };
      const store = await api("/v1/vector_stores", { method: "POST", body });
      location.hash = `#/knowledge/${store.id}`;
    }, { inline: true });
}

async function renderStores(root, ctx) {
  const list = h("div");
  const status = h("div");
  const total = h("span.muted#stores-total");
  const refresh = poller(ctx, async () => {
    const stores = (await api(`/v1/vector_stores${LIST}`)).data;
    total.textContent = `${stores.length} ${stores.length === 1 ? "store" : "stores"}`;
    list.replaceChildren(storeTable(stores, status, refresh));
    return stores.some((s) => s.status === "in_progress");
  });
  root.append(h("div.page-head", h("h1", "Knowledge"), total),
    section("Create a vector store", createForm()),
    section("Vector stores", status, list),
    notice(`Vector stores belong to the signed-in key's tenant (${ctx.me.tenant_id}); each ` +
      "indexes uploaded files for search by meaning and by words (POST /v1/vector_stores/{id}/" +
      "search).", "info"));
  await refresh();
}

// ---- #/knowledge/<id>: one store ---------------------------------------------------------------

/** The attributes textarea's object (or null); anything but an object is refused here, before
 *  an upload that could not be added. */
function attributesOf(text) {
  const value = jsonOrNull(text, "Attributes");
  if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
    throw new Error('Attributes: a JSON object, such as {"topic": "tea"}.');
  }
  return value;
}

function addFilesForm(path, names, onAdded) {
  const chooser = input("file", { type: "file", multiple: true, required: true,
    id: "knowledge-file-input" });
  const attributes = h("textarea#file-attributes", { name: "attributes", rows: 1,
    spellcheck: false, placeholder: '{"topic": "tea"}' });

  /** Uploads one file (purpose assistants), then adds it to the store; an upload the store
   *  refuses is deleted again. */
  async function add(file, attrs, progress, place) {
    const created = await upload(file, "assistants", (done, total) =>
      progress(done / total, `${place}${file.name}: ${bytes(done)} of ${bytes(total)}`));
    names.set(created.id, created.filename);
    progress(1, `${place}adding ${created.filename} to the store…`);
    const body = { file_id: created.id };
    if (attrs !== null) body.attributes = attrs;
    try {
      await api(`${path}/files`, { method: "POST", body });
    } catch (error) {
      await api(`/v1/files/${created.id}`, { method: "DELETE" }).catch(() => {});
      throw error;
    }
  }

  const el = uploadForm(
    [field("Files", chooser), field("Attributes (JSON, optional)", attributes)],
    "Upload and index",
    async (progress) => {
      const files = [...chooser.files];
      if (!files.length) return null;
      const attrs = attributesOf(attributes.value);
      for (const [i, file] of files.entries()) {
        await add(file, attrs, progress, files.length > 1 ? `(${i + 1}/${files.length}) ` : "");
        await onAdded();
      }
      el.reset();
      return `Added ${files.map((f) => f.name).join(", ")}; indexing…`;
    }, { id: "knowledge-upload" });
  return el;
}

/** Learns the filenames of files not seen yet (a vector store file carries only its id). */
async function learnNames(files, names) {
  const unknown = files.filter((f) => !names.has(f.id));
  await Promise.all(unknown.map(async (f) => {
    try {
      names.set(f.id, (await api(`/v1/files/${f.id}`)).filename);
    } catch {
      names.set(f.id, null); // the upload itself was deleted; its index stays
    }
  }));
}

function fileStatus(f) {
  return h("div", badge(f.status),
    f.last_error && h("div.last-error", `${f.last_error.code}: ${f.last_error.message}`));
}

function fileTable(files, names, status, { showText, showChunks, remove }) {
  return table([
    { label: "Filename", cell: (f) => names.get(f.id) ?? h("span.muted", "(file deleted)") },
    { label: "ID", cell: (f) => h("code", f.id) },
    { label: "Status", cell: fileStatus },
    { label: "Attributes", cell: (f) => attributeList(f.attributes) },
    { label: "Indexed", cell: (f) => bytes(f.usage_bytes), num: true },
    { label: "Added", cell: (f) => unix(f.created_at) },
    { label: "", cell: (f) => h("div.row-actions",
      h("button.ghost", { type: "button", disabled: f.status !== "completed",
        onclick: guarded(status, () => showText(f)) }, "Indexed text"),
      h("button.ghost", { type: "button", disabled: f.status !== "completed",
        onclick: guarded(status, () => showChunks(f)) }, "Chunks"),
      h("button.danger", { type: "button", onclick: guarded(status, () => remove(f)) },
        "Remove")) },
  ], files, { empty: "No files in this store yet: upload one above.",
    rowAttrs: (f) => ({ dataset: { fileId: f.id, status: f.status } }) });
}

function storeCard(store) {
  const expires = store.expires_after
    ? `${unix(store.expires_at)} (${store.expires_after.days} days after last use)` : "never";
  return h("dl.card",
    h("dt", "ID"), h("dd", h("code", store.id)),
    h("dt", "Status"), h("dd", badge(store.status)),
    h("dt", "Files"), h("dd#store-counts", counts(store.file_counts)),
    h("dt", "Indexed size"), h("dd", bytes(store.usage_bytes)),
    h("dt", "Created"), h("dd", unix(store.created_at)),
    h("dt", "Last active"), h("dd", unix(store.last_active_at)),
    h("dt", "Expires"), h("dd", expires));
}

async function renderStore(root, ctx, id) {
  const path = storePath(id);
  const names = new Map();
  const title = h("h1");
  const card = h("div");
  const list = h("div");
  const status = h("div");
  const text = h("section.panel#file-text", { hidden: true });
  const chunks = chunksPanel(path);

  async function showText(f) {
    const content = await api(`${path}/files/${f.id}/content`);
    const parts = content.data.filter((part) => part.type === "text");
    text.replaceChildren(h("h2", `Indexed text of ${names.get(f.id) ?? f.id}`),
      ...(parts.length ? parts.map((part) => h("pre.indexed-text", part.text))
        : [h("p.empty", "Nothing indexed.")]));
    text.hidden = false;
    text.scrollIntoView({ block: "nearest" });
  }

  const showChunks = (f) => chunks.show(f.id, names.get(f.id) ?? f.id);

  async function remove(f) {
    if (!confirm(`Remove ${names.get(f.id) ?? f.id} from this store? The upload stays.`)) return;
    await api(`${path}/files/${f.id}`, { method: "DELETE" });
    text.hidden = true;
    chunks.hide();
    await refresh();
  }

  const refresh = poller(ctx, async () => {
    const [store, files] = await Promise.all([api(path), api(`${path}/files${LIST}`)]);
    await learnNames(files.data, names);
    title.textContent = store.name || store.id;
    card.replaceChildren(storeCard(store));
    list.replaceChildren(fileTable(files.data, names, status, { showText, showChunks, remove }));
    return store.status === "in_progress" || files.data.some((f) => f.status === "in_progress");
  });
  root.append(h("div.page-head", h("a", { href: "#/knowledge" }, "← Knowledge"), title),
    section("Store", card),
    section("Upload files", addFilesForm(path, names, refresh)),
    section("Files", status, list),
    text,
    chunks.el,
    searchPanel(path));
  await refresh();
}

export async function render(root, ctx) {
  const id = location.hash.replace(/^#\/?/, "").split("/")[1];
  if (id) await renderStore(root, ctx, decodeURIComponent(id));
  else await renderStores(root, ctx);
}
