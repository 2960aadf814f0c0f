// Files: the signed-in key's tenant's files (the Files API): upload with progress, download, delete.
import { api, download, session } from "../api.js";
import { bytes } from "../format.js";
import { field, h, input, notice, section, select, table } from "../ui.js";

const PURPOSES = ["assistants", "user_data", "fine-tune", "batch", "vision", "evals"];

const unix = (seconds) => new Date(seconds * 1000).toISOString().replace("T", " ")
  .replace(/\.\d+Z$/, " UTC");

/** POST /v1/files with XMLHttpRequest, for its upload progress events. */
function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/files");
    xhr.setRequestHeader("authorization", `Bearer ${session.key}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new Error(xhr.response?.error?.message || `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new Error("The upload failed: the connection broke."));
    const body = new FormData();
    body.append("purpose", purpose);
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

function uploadForm(onUploaded) {
  const chooser = input("file", { type: "file", required: true, id: "file-input" });
  const purpose = select("purpose", PURPOSES.map((p) => [p, p]), "user_data");
  const bar = h("progress#upload-progress", { max: 1, value: 0, hidden: true });
  const label = h("span.muted#upload-status");
  const button = h("button#upload", { type: "submit" }, "Upload");
  const el = h("form.inline", field("File", chooser), field("Purpose", purpose),
    h("div.actions", button, bar, label));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = chooser.files[0];
    if (!file) return;
    button.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    label.className = "muted";
    label.textContent = `0 of ${bytes(file.size)}`;
    try {
      const created = await upload(file, purpose.value, (done, total) => {
        bar.value = done / total;
        label.textContent = `${bytes(done)} of ${bytes(total)}`;
      });
      label.textContent = `Uploaded ${created.filename} as ${created.id}.`;
      const chosen = purpose.value;
      el.reset();
      purpose.value = chosen;
      await onUploaded();
    } catch (error) {
      label.className = "form-status error";
      label.textContent = error.message;
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
  });
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
    section("Upload a file", uploadForm(draw)),
    section("Files", list),
    notice(`Files belong to the signed-in key's tenant (${ctx.me.tenant_id}); fine-tuning, ` +
      "knowledge bases and batches read them by id.", "info"));
  await draw();
}
