// Files: the signed-in key's tenant's files (the Files API): upload with progress, download, delete.
import { api, download, upload } from "../api.js";
import { bytes, unix } from "../format.js";
import { field, h, input, notice, section, select, table, uploadForm } from "../ui.js";

const PURPOSES = ["assistants", "user_data", "fine-tune", "batch", "vision", "evals"];

function fileForm(onUploaded) {
  const chooser = input("file", { type: "file", required: true, id: "file-input" });
  const purpose = select("purpose", PURPOSES.map((p) => [p, p]), "user_data");
  const el = uploadForm([field("File", chooser), field("Purpose", purpose)], "Upload",
    async (progress) => {
      const file = chooser.files[0];
      if (!file) return null;
      progress(0, `0 of ${bytes(file.size)}`);
      const created = await upload(file, purpose.value,
        (done, total) => progress(done / total, `${bytes(done)} of ${bytes(total)}`));
      const chosen = purpose.value;
      el.reset();
      purpose.value = chosen;
      await onUploaded();
      return `Uploaded ${created.filename} as ${created.id}.`;
    }, { id: "upload" });
  return el;
}

function fileTable(files, done) {
  return table([
    { label: "Filename", cell: (f) => f.filename },
    { label: "ID", cell: (f) => h("code", f.id) },
    { label: "Purpose", cell: (f) => f.purpose },
    { label: "Size", cell: (f) => bytes(f.bytes), num: true },
    { label: "Created", cell: (f) => unix(f.created_at) },
    { label: "Expires", cell: (f) => (f.expires_at ? unix(f.expires_at) : "—") },
    { label: "", cell: (f) => h("div.row-actions",
      h("button.ghost", { type: "button",
        onclick: () => download(`/v1/files/${f.id}/content`, f.filename) }, "Download"),
      h("button.danger", { type: "button", onclick: async () => {
        if (!confirm(`Delete ${f.filename}? Its bytes are removed at once.`)) return;
        await api(`/v1/files/${f.id}`, { method: "DELETE" });
        done();
      } }, "Delete")) },
  ], files, { empty: "No files yet.", rowAttrs: (f) => ({ dataset: { fileId: f.id } }) });
}

export async function render(root, ctx) {
  const list = h("div");
  const total = h("span.muted#files-total");
  async function draw() {
    const files = (await api("/v1/files")).data;
    const stored = files.reduce((sum, f) => sum + f.bytes, 0);
    total.textContent = `${files.length} ${files.length === 1 ? "file" : "files"}, ${bytes(stored)}`;
    list.replaceChildren(fileTable(files, draw));
  }
  root.append(h("div.page-head", h("h1", "Files"), total),
    section("Upload a file", fileForm(draw)),
    section("Files", list),
    notice(`Files belong to the signed-in key's tenant (${ctx.me.tenant_id}); fine-tuning, ` +
      "knowledge bases and batches read them by id.", "info"));
  await draw();
}
