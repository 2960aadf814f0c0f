// Audit: every admin POST, PATCH and DELETE (GET /admin/v1/audit), refused ones too, newest
// first: when, which key of which role, the tenant acted upon, the method and path, the answer's
// status and the caller's address. "Older" asks for the entries before the last row's seq; a row
// opens to its request and the object before and after as JSON, the fields that changed marked.
// A platform admin sees every tenant's entries or one tenant's (a field here: the header's
// picker has no "all tenants") and may verify the hash chain (GET /admin/v1/audit/verify); a
// tenant admin sees its own tenant's.
import { api } from "../api.js";
import { int, when } from "../format.js";
import { badge, field, form, h, input, notice, section, table } from "../ui.js";

const PAGE = 50;
const PARTS = [["request", "Request"], ["before", "Before"], ["after", "After"]];
// console.css colours these badges green, yellow and red
const STATUS_BADGES = { ok: "completed", warn: "pending", error: "failed" };

const outcomeOf = (status) => (status < 400 ? "ok" : status < 500 ? "warn" : "error");
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const pathLabel = (path) => path.join(".");

// ---- what changed ------------------------------------------------------------------------------

/** The paths (arrays of keys) whose values differ between two objects, as deep as both sides
 *  are objects; an array is one value. */
function changedPaths(before, after, path = []) {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) => changedPaths(before[k], after[k], [...path, k]));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [path];
}

/** `value` as indented JSON, each entry whose path is in `marked` (paths as JSON) in a mark. */
function jsonNodes(value, marked, path = [], pad = "") {
  if (!isObject(value) || !Object.keys(value).length) {
    return [JSON.stringify(value, null, 2).replace(/\n/g, `\n${pad}`)];
  }
  const inner = `${pad}  `;
  const entries = Object.entries(value);
  return ["{\n", ...entries.flatMap(([key, v], i) => {
    const at = [...path, key];
    const entry = [`${JSON.stringify(key)}: `, ...jsonNodes(v, marked, at, inner)];
    const shown = marked.has(JSON.stringify(at))
      ? h("mark", { dataset: { path: pathLabel(at) } }, entry) : entry;
    return [inner, shown, i < entries.length - 1 ? ",\n" : "\n"];
  }), `${pad}}`];
}

function details(e) {
  const changes = isObject(e.before) && isObject(e.after) ? changedPaths(e.before, e.after) : [];
  const marked = new Set(changes.map((p) => JSON.stringify(p)));
  const parts = PARTS.filter(([name]) => e[name] !== null && e[name] !== undefined);
  return [
    h("dl.card",
      h("dt", "Seq"), h("dd", int(e.seq)),
      h("dt", "Key's tenant"), h("dd", e.actor_tenant_id ? h("code", e.actor_tenant_id) : "—"),
      h("dt", "Hash"), h("dd", h("code", e.hash)),
      h("dt", "Previous hash"), h("dd", h("code", e.prev_hash))),
    isObject(e.before) && isObject(e.after) && h("p.audit-changes", "Changed: ", changes.length
      ? h("span.attributes", changes.map((p) => h("code.attribute", pathLabel(p))))
      : h("span.muted", "nothing")),
    parts.length ? parts.map(([name, label]) => h("div.audit-json", { dataset: { part: name } },
      h("h4", label), h("pre.arguments", jsonNodes(e[name], name === "request" ? new Set()
        : marked))))
      : h("p.muted", "No request body, and no object before or after."),
  ];
}

// ---- the entries -------------------------------------------------------------------------------

function entryTable(entries, opened, toggle, tenantName) {
  const el = table([
    { label: "Seq", cell: (e) => h("button.link.audit-toggle", { type: "button",
      "aria-expanded": String(opened.has(e.seq)), title: "Show the request, before and after",
      onclick: (event) => toggle(e, event.currentTarget.closest("tr")) },
    `${opened.has(e.seq) ? "▾" : "▸"} ${e.seq}`) },
    { label: "Time", cell: (e) => when(e.created_at) },
    { label: "Actor", cell: (e) => h("div",
      e.actor_key_id ? h("code", e.actor_key_id) : h("span.muted", "not shown"),
      h("div.muted", e.actor_role.replace("_", " "))) },
    { label: "Tenant", cell: (e) => (e.tenant_id
      ? h("div", tenantName(e.tenant_id), h("div.muted", e.tenant_id)) : h("span.muted", "—")) },
    { label: "Action", cell: (e) => h("span.audit-action", h("strong", e.method), " ",
      h("code", e.path)) },
    { label: "Status", cell: (e) => badge(String(e.status), STATUS_BADGES[outcomeOf(e.status)]) },
    { label: "Address", cell: (e) => (e.address ? h("code", e.address) : "—") },
  ], entries, { empty: "No admin actions recorded yet.",
    rowAttrs: (e) => ({ dataset: { seq: e.seq, method: e.method, path: e.path,
      status: e.status, outcome: outcomeOf(e.status), tenantId: e.tenant_id ?? "" } }) });
  return el;
}

function detailRow(e, columns) {
  return h("tr.audit-detail", { dataset: { seq: e.seq } },
    h("td", { colSpan: columns }, details(e)));
}

// ---- the chain (platform admin) ----------------------------------------------------------------

function verifyPanel() {
  const result = h("span#audit-verification", { dataset: { state: "idle" } });
  const button = h("button#audit-verify", { type: "button" }, "Verify chain");
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.dataset.state = "busy";
    result.replaceChildren(h("span.muted", "Recomputing every hash…"));
    try {
      const v = await api("/admin/v1/audit/verify");
      result.dataset.state = v.intact ? "intact" : "broken";
      result.replaceChildren(...(v.intact
        ? [badge("intact", "completed"), ` ${int(v.entries)} entries checked`]
        : [badge(`broken at seq ${v.first_broken_seq}`, "failed"),
          ` the ${int(v.entries)} entries before it are intact`]));
    } catch (error) {
      result.dataset.state = "failed";
      result.replaceChildren(notice(error.message));
    } finally {
      button.disabled = false;
    }
  });
  const el = section("Hash chain", h("p.muted", "Each entry's hash covers the previous " +
    "entry's hash and its own fields: an entry edited, removed or moved breaks the chain from " +
    "there on. Verifying recomputes it from the first entry."), h("div.actions", button, result));
  el.id = "audit-chain";
  return el;
}

// ---- the page ----------------------------------------------------------------------------------

export async function render(root, ctx) {
  const tenants = (await api("/admin/v1/tenants")).data;
  const names = new Map(tenants.map((t) => [t.id, t.name]));
  const tenantName = (id) => names.get(id) ?? id;
  const list = h("div#audit-entries");
  const status = h("div");
  const total = h("span.muted#audit-total");
  const scope = h("span.muted#audit-scope");
  const older = h("button.ghost#audit-older", { type: "button", hidden: true }, "Older");
  const opened = new Set(); // seqs whose details are shown
  let rows = [];
  let hasMore = false;
  let tenantId = ctx.platform ? "" : ctx.tenantId; // "": every tenant
  let ticket = 0; // the latest load wins

  function toggle(e, tr) {
    const shown = tr.nextElementSibling?.classList.contains("audit-detail");
    if (shown) {
      opened.delete(e.seq);
      tr.nextElementSibling.remove();
    } else {
      opened.add(e.seq);
      tr.after(detailRow(e, tr.children.length));
    }
    const button = tr.querySelector(".audit-toggle");
    button.setAttribute("aria-expanded", String(!shown));
    button.textContent = `${shown ? "▸" : "▾"} ${e.seq}`;
  }

  function draw() {
    total.textContent = `${rows.length}${hasMore ? "+" : ""} ` +
      `${rows.length === 1 ? "entry" : "entries"}`;
    scope.textContent = tenantId ? `tenant ${tenantName(tenantId)}` : "all tenants";
    older.hidden = !hasMore;
    const el = entryTable(rows, opened, toggle, tenantName);
    const bySeq = new Map(rows.map((e) => [String(e.seq), e]));
    for (const tr of el.querySelectorAll("tbody tr")) {
      const entry = bySeq.get(tr.dataset.seq);
      if (opened.has(entry.seq)) tr.after(detailRow(entry, tr.children.length));
    }
    list.replaceChildren(el);
  }

  async function load(beforeSeq) {
    const mine = (ticket += 1);
    const query = new URLSearchParams({ limit: PAGE });
    if (tenantId) query.set("tenant_id", tenantId);
    if (beforeSeq !== undefined) query.set("before_seq", beforeSeq);
    const page = await api(`/admin/v1/audit?${query}`);
    if (mine !== ticket) return;
    rows = beforeSeq === undefined ? page.data : [...rows, ...page.data];
    hasMore = page.has_more && page.data.length > 0;
    draw();
  }

  older.addEventListener("click", async () => {
    older.disabled = true;
    status.replaceChildren();
    try {
      await load(rows.at(-1)?.seq);
    } catch (error) {
      status.replaceChildren(notice(error.message));
    } finally {
      older.disabled = false;
    }
  });

  const filter = ctx.platform && form([
    field("Tenant", input("tenant_id", { id: "audit-tenant", list: "audit-tenants", size: 32,
      placeholder: "all tenants", autocomplete: "off" }),
    "blank: every tenant; an id: what was done to it or by its keys"),
    h("datalist#audit-tenants", tenants.map((t) => h("option", { value: t.id }, t.name))),
  ], "Show", async (v) => {
    tenantId = v.tenant_id.trim();
    opened.clear();
    await load();
  }, { inline: true });
  if (filter) filter.id = "audit-filter";

  root.append(h("div.page-head", h("h1", "Audit log"), scope, total),
    section("Entries", filter, status, list, h("div.actions", older)),
    ...(ctx.platform ? [verifyPanel()] : []),
    notice("Every POST, PATCH and DELETE of the admin API is recorded, refused ones too: the " +
      "key, its role and address, the request, and the object before and after. Secrets " +
      "(keys, headers, tokens, passwords) are redacted before they are stored." +
      (ctx.platform ? "" : " You see the entries about this tenant or made with its keys."),
    "info"));
  await load();
}
