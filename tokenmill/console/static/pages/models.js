// Models: the library with cards, versions and aliases; add a model from a local GGUF file.
import { api } from "../api.js";
import { bytes, when } from "../format.js";
import { badge, field, form, h, input, section, select, table } from "../ui.js";

function card(model) {
  const entries = Object.entries(model.card || {}).filter(([, v]) => v !== null && v !== "" &&
    !(Array.isArray(v) && !v.length));
  return h("div.detail",
    h("h3", model.id),
    h("dl.card", entries.map(([k, v]) => [h("dt", k.replaceAll("_", " ")),
      h("dd", typeof v === "object" ? JSON.stringify(v) : String(v))])),
    h("h4", "Versions"),
    table([
      { label: "Version", cell: (v) => [v.version, v.version === model.default_version ?
        badge("default") : null] },
      { label: "Served as", cell: (v) => h("code", v.id) },
      { label: "Size", cell: (v) => bytes(v.size_bytes), num: true },
      { label: "SHA-256", cell: (v) => h("code", (v.sha256 || "").slice(0, 12)) },
      { label: "Settings", cell: (v) => h("code", JSON.stringify(v.settings || {})) },
      { label: "Measured", cell: (v) => h("code", JSON.stringify(v.measured || {})) },
      { label: "Added", cell: (v) => when(v.created_at) },
    ], model.versions || []));
}

function library(models, detail) {
  return table([
    { label: "Model", cell: (m) => h("a", { href: "#/models", onclick: (e) => {
      e.preventDefault(); detail.replaceChildren(card(m)); } }, m.id) },
    { label: "Task", cell: (m) => m.task },
    { label: "Engine", cell: (m) => m.engine },
    { label: "Owner", cell: (m) => m.owner || "platform" },
    { label: "Visibility", cell: (m) => badge(!m.owner ? "public"
      : m.published ? "published" : "private") },
    { label: "Default version", cell: (m) => m.default_version || "—" },
    { label: "Versions", cell: (m) => String((m.versions || []).length), num: true },
    { label: "Aliases", cell: (m) => (m.aliases || []).map((a) => h("code.alias",
      typeof a === "string" ? a : a.name)) },
  ], models, { empty: "The library is empty." });
}

function addModel(ctx, done) {
  const fields = [
    field("GGUF file on the server", input("path", { required: true,
      placeholder: "/models/my-model.Q4_K_M.gguf", size: 40 })),
    field("Model id", input("id", { placeholder: "my-model (optional)" })),
  ];
  if (ctx.platform) fields.push(field("Owner", select("owner", [["", "platform (public)"],
    [ctx.tenantId, `tenant ${ctx.tenantId}`]], "")));
  return form(fields, "Add model", async (v) => {
    const body = { path: v.path.trim(), owner: ctx.platform ? v.owner || null : ctx.me.tenant_id };
    if (v.id) body.id = v.id.trim();
    await api("/admin/v1/models", { method: "POST", body });
    done();
  }, { inline: true });
}

function aliasForm(models, done) {
  return form([
    field("Alias", input("name", { required: true, placeholder: "chat-default" })),
    field("Model", select("model", models.map((m) => [m.id, m.id]))),
    field("Version", input("version", { placeholder: "default" })),
  ], "Set alias", async (v) => {
    const model = models.find((m) => m.id === v.model);
    const body = { name: v.name.trim(), model: v.model,
      version: v.version.trim() || model?.default_version };
    await api("/admin/v1/aliases", { method: "POST", body });
    done();
  }, { inline: true });
}

export async function render(root, ctx) {
  const [models, aliases] = await Promise.all([
    api("/admin/v1/models").then((r) => r.data),
    api("/admin/v1/aliases").then((r) => r.data),
  ]);
  const detail = h("div");
  const again = () => { root.replaceChildren(); render(root, ctx); };
  root.append(h("div.page-head", h("h1", "Models"), h("span.muted", `${models.length} in the library`)),
    section("Library", library(models, detail), detail),
    section("Aliases", table([
      { label: "Alias", cell: (a) => h("code", a.name) },
      { label: "Model", cell: (a) => a.model },
      { label: "Version", cell: (a) => a.version },
      { label: "Owner", cell: (a) => a.owner || "platform" },
      { label: "Updated", cell: (a) => when(a.updated_at) },
    ], aliases, { empty: "No aliases." }), models.length ? aliasForm(models, again) : null),
    section("Add a model", addModel(ctx, again)));
  if (models.length) detail.replaceChildren(card(models[0]));
}
