// Deployments: create, scale, stop; each replica's state and where it runs.
import { api } from "../api.js";
import { bytes, int } from "../format.js";
import { badge, field, form, h, input, intOrNull, section, select, table } from "../ui.js";

function replicaList(replicas) {
  if (!replicas || !replicas.length) return h("span.muted", "none");
  return h("ul.replicas", replicas.map((r) => h("li", badge(r.state), " ", h("code", r.id),
    ` on ${r.node || "?"}`, (r.accelerators || []).length ? ` [${r.accelerators.join(", ")}]` : "",
    ` · ${bytes(r.memory_bytes)}`)));
}

function scaleForm(d, done) {
  return form([
    input("min_replicas", { type: "number", min: 0, value: d.min_replicas, title: "min replicas",
      "aria-label": `min replicas of ${d.id}` }),
    input("max_replicas", { type: "number", min: 1, value: d.max_replicas, title: "max replicas",
      "aria-label": `max replicas of ${d.id}` }),
  ], "Scale", async (v) => {
    await api(`/admin/v1/deployments/${d.id}`, { method: "PATCH",
      body: { min_replicas: intOrNull(v.min_replicas), max_replicas: intOrNull(v.max_replicas) } });
    done();
  }, { inline: true });
}

function actions(ctx, d, done) {
  if (!ctx.platform) return h("span.muted", "—");
  const stop = h("button.danger", { type: "button", onclick: async () => {
    if (!confirm(`Stop ${d.id}? Its replicas are drained and stopped.`)) return;
    await api(`/admin/v1/deployments/${d.id}/stop`, { method: "POST" });
    done();
  } }, "Stop");
  const start = h("button", { type: "button", onclick: async () => {
    await api(`/admin/v1/deployments/${d.id}`, { method: "PATCH", body: { status: "active" } });
    done();
  } }, "Start");
  return h("div.row-actions", scaleForm(d, done), d.status === "stopped" ? start : stop);
}

function createForm(ctx, models, done) {
  return form([
    field("Model", select("model", models.map((m) => [m.id, m.id]))),
    field("Version", input("version", { placeholder: "default" })),
    field("Mode", select("mode", [["serverless", "serverless (shared, per token)"],
      ["dedicated", "dedicated (one tenant, per hour)"]], "serverless")),
    field("Tenant (dedicated)", input("tenant_id", { placeholder: ctx.tenantId })),
    field("Min", input("min_replicas", { type: "number", min: 0, value: 0 })),
    field("Max", input("max_replicas", { type: "number", min: 1, value: 1 })),
    field("Idle seconds", input("idle_seconds", { type: "number", min: 1, value: 300 })),
  ], "Create deployment", async (v) => {
    const body = { model: v.model, mode: v.mode, min_replicas: intOrNull(v.min_replicas),
      max_replicas: intOrNull(v.max_replicas), idle_seconds: intOrNull(v.idle_seconds) };
    if (v.version.trim()) body.version = v.version.trim();
    if (v.mode === "dedicated") body.tenant_id = v.tenant_id.trim() || ctx.tenantId;
    await api("/admin/v1/deployments", { method: "POST", body });
    done();
  }, { inline: true });
}

const shape = (list) => JSON.stringify(list.map((d) => [d.id, d.status, d.health,
  d.health_reason, d.last_error, d.min_replicas, d.max_replicas,
  (d.replicas || []).map((r) => r.state)]));

export async function render(root, ctx) {
  const models = ctx.platform ? (await api("/admin/v1/models")).data : [];
  let shown = "";
  async function draw(force = true) {
    const deployments = (await api("/admin/v1/deployments")).data;
    if (!force && shape(deployments) === shown) return;
    shown = shape(deployments);
    root.replaceChildren(h("div.page-head", h("h1", "Deployments"),
        h("span.muted", `${deployments.length} deployments`)),
      section("Deployments", table([
        { label: "Deployment", cell: (d) => h("code", d.id) },
        { label: "Model", cell: (d) => `${d.model} v${d.version}` },
        { label: "Mode", cell: (d) => d.mode + (d.tenant_id ? ` · ${d.tenant_id}` : "") },
        { label: "Status", cell: (d) => [badge(d.status),
          d.health === "failing" ? [" ", badge("failing"), h("div.error", d.health_reason)]
            : d.last_error ? h("div.error", d.last_error) : null] },
        { label: "Replicas", cell: (d) => `${int(d.replicas?.length ?? 0)} of `
          + `${d.min_replicas}–${d.max_replicas}` },
        { label: "Scaling", cell: (d) => (d.scaling_reason || "—")
          + (d.target_replicas !== null && d.target_replicas !== undefined
            ? ` → ${d.target_replicas}` : "") },
        { label: "Where", cell: (d) => replicaList(d.replicas) },
        { label: "", cell: (d) => actions(ctx, d, draw) },
      ], deployments, { empty: "No deployments in scope." })),
      ctx.platform && models.length ? section("Create a deployment", createForm(ctx, models, draw))
        : null);
  }
  await draw();
  ctx.every(5000, () => draw(false).catch(() => {}));
}
