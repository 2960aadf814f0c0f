// Keys: create (the secret is shown once), set limits, revoke.
import { api } from "../api.js";
import { dollarsToMicros, int, money, when } from "../format.js";
import { badge, field, form, h, input, intOrNull, notice, section, select, table } from "../ui.js";

const LIMITS = [["rpm_limit", "RPM"], ["tpm_limit", "TPM"], ["concurrency_limit", "Concurrency"]];
const TIERS = ["priority", "default", "flex"];

function limitFields(key = {}) {
  return [
    ...LIMITS.map(([name, label]) => field(label, input(name, { type: "number", min: 0,
      value: key[name] ?? "", placeholder: "tenant's", size: 8 }))),
    field("Monthly budget $", input("monthly_budget", { inputmode: "decimal", size: 8,
      value: key.monthly_budget_micros != null ? key.monthly_budget_micros / 1e6 : "",
      placeholder: "tenant's" })),
    field("Default tier", select("service_tier",
      [["", "tenant's"], ...TIERS.map((t) => [t, t])], key.service_tier ?? "")),
    field("Tiers", h("select", { name: "service_tiers", multiple: true, size: 3 },
      TIERS.map((t) => h("option", { value: t, selected: (key.service_tiers || []).includes(t) },
        t))), "none selected: the tenant's"),
  ];
}

function limitValues(v, el) {
  const out = Object.fromEntries(LIMITS.map(([name]) => [name, intOrNull(v[name])]));
  out.monthly_budget_micros = dollarsToMicros(v.monthly_budget);
  out.service_tier = v.service_tier || null;
  const tiers = [...el.querySelector("select[name=service_tiers]").selectedOptions];
  out.service_tiers = tiers.length ? tiers.map((o) => o.value) : null;
  return out;
}

function secretBox(created) {
  const value = h("code#new-secret", created.secret);
  const copy = h("button.ghost", { type: "button", onclick: async () => {
    await navigator.clipboard?.writeText(created.secret);
    copy.textContent = "Copied";
  } }, "Copy");
  return h("div.secret",
    h("strong", `Key “${created.name}” created. Copy its secret now: it is shown only once.`),
    h("div.secret-value", value, copy));
}

function editForm(key, done) {
  return form(limitFields(key), "Save limits", async (v, el) => {
    await api(`/admin/v1/keys/${key.id}`, { method: "PATCH", body: limitValues(v, el) });
    done();
  }, { inline: true });
}

function keyTable(keys, done) {
  const editing = h("div");
  const rows = table([
    { label: "Name", cell: (k) => k.name },
    { label: "Key", cell: (k) => h("code", `${k.prefix}…`) },
    { label: "Role", cell: (k) => k.role.replace("_", " ") },
    { label: "Models", cell: (k) => (k.allowed_models || ["all"]).join(", ") },
    { label: "RPM", cell: (k) => int(k.rpm_limit), num: true },
    { label: "TPM", cell: (k) => int(k.tpm_limit), num: true },
    { label: "Conc.", cell: (k) => int(k.concurrency_limit), num: true },
    { label: "Budget / month", cell: (k) => money(k.monthly_budget_micros), num: true },
    { label: "Tiers", cell: (k) => `${k.service_tier || "tenant's"} of ` +
      (k.service_tiers || ["tenant's"]).join(", ") },
    { label: "Created", cell: (k) => when(k.created_at) },
    { label: "Status", cell: (k) => badge(k.revoked_at ? "revoked" : "active") },
    { label: "", cell: (k) => k.revoked_at ? "" : h("div.row-actions",
      h("button.ghost", { type: "button", onclick: () => editing.replaceChildren(
        section(`Limits of ${k.name}`, editForm(k, done))) }, "Limits"),
      h("button.danger", { type: "button", onclick: async () => {
        if (!confirm(`Revoke ${k.name}? Gateways refuse it within a second.`)) return;
        await api(`/admin/v1/keys/${k.id}/revoke`, { method: "POST" });
        done();
      } }, "Revoke")) },
  ], keys, { empty: "No keys.", rowAttrs: (k) => ({ dataset: { keyId: k.id } }) });
  return [rows, editing];
}

function createForm(ctx, models, onCreated) {
  const roles = [["inference", "inference (models only)"], ["tenant_admin", "tenant admin"]];
  if (ctx.platform) roles.push(["platform_admin", "platform admin"]);
  return form([
    field("Name", input("name", { required: true, placeholder: "ci-bot", id: "key-name" })),
    field("Role", select("role", roles, "inference")),
    field("Models", h("select", { name: "models", multiple: true, size: 4 },
      models.map((m) => h("option", { value: m.id }, m.id))), "none selected: all"),
    ...limitFields(),
  ], "Create key", async (v, el) => {
    const chosen = [...el.querySelector("select[name=models]").selectedOptions].map((o) => o.value);
    const body = { name: v.name.trim(), role: v.role, ...limitValues(v, el) };
    if (chosen.length) body.allowed_models = chosen;
    for (const name of Object.keys(body)) if (body[name] === null) delete body[name];
    const created = await api(`/admin/v1/tenants/${ctx.tenantId}/keys`, { method: "POST", body });
    el.reset();
    onCreated(created);
  }, { inline: true });
}

export async function render(root, ctx) {
  const models = (await api("/v1/models")).data;
  const fresh = h("div");
  async function draw() {
    const keys = (await api(`/admin/v1/tenants/${ctx.tenantId}/keys`)).data;
    list.replaceChildren(...keyTable(keys, draw));
  }
  const list = h("div");
  root.append(h("div.page-head", h("h1", "API keys"), h("span.muted", `tenant ${ctx.tenantId}`)),
    fresh,
    section("Create a key", createForm(ctx, models, async (created) => {
      fresh.replaceChildren(secretBox(created));
      await draw();
    })),
    section("Keys", list),
    notice("Secrets are stored only as hashes: a lost secret cannot be shown again; " +
      "create a new key and revoke the old one.", "info"));
  await draw();
}
