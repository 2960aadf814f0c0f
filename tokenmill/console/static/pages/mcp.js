// MCP servers: the tenant's registered MCP servers (/admin/v1/tenants/{id}/mcp_servers), which
// a response's mcp tool names by label. Lists them, registers one over streamable HTTP with its
// headers (sealed: only their names come back), asks one for its tools now, deletes one.
import { api } from "../api.js";
import { unix } from "../format.js";
import { badge, field, form, guarded, h, input, notice, section, select, table } from "../ui.js";

const APPROVALS = [["always", "always (the client approves each call)"], ["never", "never"]];

const serversPath = (ctx) =>
  `/admin/v1/tenants/${encodeURIComponent(ctx.tenantId)}/mcp_servers`;

/** Names as small code chips, or a muted `none`. */
function chips(names, none) {
  if (!names.length) return h("span.muted", none);
  return h("span.attributes", names.map((n) => h("code.attribute", n)));
}

/** "always", "never", or "never: a, b · always: c" of a per-tool policy. */
function approvalText(policy) {
  if (typeof policy === "string") return policy;
  return Object.entries(policy).map(([when, v]) => `${when}: ${v.tool_names.join(", ")}`)
    .join(" · ");
}

/** A stdio server's argv as one command line, quoted where a part has spaces. */
const commandLine = (argv) =>
  argv.map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replace(/'/g, "'\\''")}'`))
    .join(" ");

// ---- the servers -------------------------------------------------------------------------------

function serverTable(servers, status, { showTools, remove }) {
  return table([
    { label: "Label", cell: (s) => h("div", h("strong", s.server_label),
      s.server_description && h("div.muted", s.server_description)) },
    { label: "Transport", cell: (s) => badge(s.transport) },
    { label: "URL or command", cell: (s) =>
      h("code", s.command ? commandLine(s.command) : s.server_url) },
    { label: "Headers", cell: (s) => chips(Object.keys(s.headers), "none") },
    { label: "Allowed tools", cell: (s) => chips(s.allowed_tools ?? [],
      s.allowed_tools ? "none" : "all") },
    { label: "Approval", cell: (s) => approvalText(s.require_approval) },
    { label: "Created", cell: (s) => unix(s.created_at) },
    { label: "", cell: (s) => h("div.row-actions",
      h("button.ghost", { type: "button", onclick: guarded(status, () => showTools(s)) }, "Tools"),
      h("button.danger", { type: "button", onclick: guarded(status, () => remove(s)) },
        "Delete")) },
  ], servers, { empty: "No MCP servers registered yet.",
    rowAttrs: (s) => ({ dataset: { serverId: s.id, label: s.server_label } }) });
}

// ---- registering one ---------------------------------------------------------------------------

function headerRow() {
  const row = h("div.row-actions.header-row",
    input("header_name", { placeholder: "Authorization", autocomplete: "off", size: 18,
      "aria-label": "Header name" }),
    input("header_value", { type: "password", placeholder: "Bearer …", autocomplete: "off",
      size: 28, "aria-label": "Header value" }),
    h("button.ghost", { type: "button", title: "Remove this header",
      onclick: () => row.remove() }, "Remove"));
  return row;
}

/** The header rows as {name: value}; a row left blank is skipped. */
function headerValues(rows) {
  const headers = {};
  for (const row of rows.querySelectorAll(".header-row")) {
    const [name, value] = [...row.querySelectorAll("input")].map((i) => i.value);
    if (!name.trim() && !value) continue;
    if (!name.trim()) throw new Error("Headers: a value needs a name.");
    if (name.trim() in headers) throw new Error(`Headers: ${name.trim()} is given twice.`);
    headers[name.trim()] = value;
  }
  return headers;
}

function registerForm(onRegistered) {
  const rows = h("div#mcp-headers", headerRow());
  const more = h("button.ghost#mcp-add-header", { type: "button",
    onclick: () => rows.append(headerRow()) }, "Add header");
  const el = form([
    h("div.options",
      field("Label", input("label", { required: true, id: "mcp-label", placeholder: "docs",
        autocomplete: "off", size: 16 })),
      field("URL", input("url", { required: true, id: "mcp-url", type: "url", size: 44,
        placeholder: "https://mcp.example.com/mcp", autocomplete: "off" })),
      field("Description", input("description", { id: "mcp-description", size: 36,
        placeholder: "optional: what it is for" }))),
    h("div.field", h("span", "Headers"), rows, h("div", more),
      h("small", "Sent with every request to the server (an API key, say); sealed at rest and " +
        "never shown again, only their names.")),
    h("div.options",
      field("Allowed tools", input("allowed_tools", { id: "mcp-allowed", size: 36,
        placeholder: "all", autocomplete: "off" }), "names, comma-separated; blank: all"),
      field("Approval", Object.assign(select("require_approval", APPROVALS, "always"),
        { id: "mcp-approval" }))),
  ], "Register", async (v, formEl) => {
    const body = { label: v.label.trim(), url: v.url.trim(), require_approval: v.require_approval };
    if (v.description.trim()) body.description = v.description.trim();
    const headers = headerValues(rows);
    if (Object.keys(headers).length) body.headers = headers;
    const allowed = v.allowed_tools.split(/[\s,]+/).filter(Boolean);
    if (allowed.length) body.allowed_tools = allowed;
    const created = await onRegistered(body);
    formEl.reset();
    rows.replaceChildren(headerRow());
    return created;
  });
  el.id = "mcp-register";
  return el;
}

// ---- a server's tools --------------------------------------------------------------------------

/** "add(a, b)" of a tool and its input schema; optional arguments end in "?". */
function signature(tool) {
  const schema = tool.input_schema || {};
  const required = new Set(schema.required || []);
  const args = Object.keys(schema.properties || {})
    .map((name) => (required.has(name) ? name : `${name}?`));
  return `${tool.name}(${args.join(", ")})`;
}

function toolList(tools, allowed) {
  if (!tools.length) return h("p.empty", "The server offers no tools.");
  return h("div#mcp-tool-list", tools.map((tool) => {
    const usable = !allowed || allowed.includes(tool.name);
    return h("div.passage.mcp-tool", { dataset: { tool: tool.name } },
      h("div.passage-head", h("code.name", signature(tool)),
        !usable && badge("not allowed", "stopped")),
      h("p.passage-text.description", tool.description || h("span.muted", "No description.")));
  }));
}

function toolsPanel(ctx) {
  const el = h("section.panel#mcp-tools", { hidden: true });
  async function show(server) {
    const title = h("h2", `Tools of ${server.server_label}`);
    el.hidden = false;
    el.dataset.serverId = server.id;
    el.dataset.state = "asking";
    el.replaceChildren(title, h("p.muted", "Asking the server…"));
    el.scrollIntoView({ block: "nearest" });
    let listed;
    try {
      listed = await api(`${serversPath(ctx)}/${encodeURIComponent(server.id)}/tools`);
    } catch (error) {
      listed = { tools: [], error: error.message };
    }
    if (el.dataset.serverId !== server.id) return; // another server was asked since
    el.dataset.state = listed.error ? "failed" : "listed";
    el.replaceChildren(title, listed.error ? notice(listed.error)
      : toolList(listed.tools, server.allowed_tools));
  }
  function hide(serverId) {
    if (el.dataset.serverId === serverId) el.hidden = true;
  }
  return { el, show, hide };
}

// ---- the page ----------------------------------------------------------------------------------

export async function render(root, ctx) {
  const list = h("div");
  const status = h("div");
  const fresh = h("div");
  const total = h("span.muted#mcp-total");
  const tools = toolsPanel(ctx);

  async function draw() {
    const servers = (await api(serversPath(ctx))).data;
    total.textContent = `${servers.length} ${servers.length === 1 ? "server" : "servers"}`;
    list.replaceChildren(serverTable(servers, status, { showTools: tools.show, remove }));
  }

  async function remove(server) {
    if (!confirm(`Delete ${server.server_label}? Responses naming it will fail.`)) return;
    await api(`${serversPath(ctx)}/${encodeURIComponent(server.id)}`, { method: "DELETE" });
    tools.hide(server.id);
    fresh.replaceChildren();
    await draw();
  }

  async function register(body) {
    const created = await api(serversPath(ctx), { method: "POST", body });
    fresh.replaceChildren(notice(`Registered ${created.server_label} as ${created.id}. ` +
      "Ask it for its tools below to check the platform reaches it.", "info"));
    await draw();
    return created;
  }

  const reach = ctx.platform
    ? "Servers registered with a platform admin key are trusted: they may be on a private " +
      "network."
    : "A server must be on a public address, unless the operator allows its host " +
      "(mcp_allowed_hosts).";
  root.append(h("div.page-head", h("h1", "MCP servers"), h("span.muted", `tenant ${ctx.tenantId}`),
    total),
    fresh,
    section("Register a server", registerForm(register)),
    section("Servers", status, list),
    tools.el,
    notice("A response uses a server by its label: tools: [{\"type\": \"mcp\", " +
      `"server_label": "docs"}]. ${reach}`, "info"));
  await draw();
}
