// Apps: versioned bundles (model, instructions, knowledge, tools, guardrails) a tenant builds
// once and calls by id (/v1/apps). #/apps lists them with their usage; #/apps/new builds one;
// #/apps/<id> edits it (apps_builder.js) and saves new versions, tests the version open in a
// chat (apps_chat.js), lists, compares and publishes versions (apps_versions.js), and issues a
// key that may call only this App. Apps belong to the signed-in key's own tenant.
import { api } from "../api.js";
import { int, money, unix } from "../format.js";
import { badge, field, form, h, input, notice, section, table } from "../ui.js";
import { appBuilder } from "./apps_builder.js";
import { chatPanel } from "./apps_chat.js";
import { versionsPanel } from "./apps_versions.js";
import { chatModels } from "./playground.js";

const appPath = (id) => `/v1/apps/${encodeURIComponent(id)}`;
const tenantPath = (ctx) => `/admin/v1/tenants/${encodeURIComponent(ctx.me.tenant_id)}`;
const usagePath = (ctx) => `${tenantPath(ctx)}/usage?group_by=app`;

/** What the builder offers: chat models, vector stores and MCP servers of the key's tenant
 *  (a list this key may not read is offered empty). */
async function choices(ctx) {
  const soft = (error) => {
    if (error.status === 401) throw error;
    return [];
  };
  const [models, stores, servers] = await Promise.all([
    chatModels(),
    api("/v1/vector_stores?limit=100").then((r) => r.data, soft),
    api(`${tenantPath(ctx)}/mcp_servers`).then((r) => r.data, soft),
  ]);
  return { models, stores, servers };
}

/** A platform admin's tenant picker does not move this page: say so when it points elsewhere
 *  (nothing when it does not). */
function tenantNote(ctx) {
  if (ctx.tenantId === ctx.me.tenant_id) return [];
  const note = notice(`Apps belong to the signed-in key's own tenant (${ctx.me.tenant_id}): ` +
    `this page shows and builds its Apps, not those of the tenant picked above ` +
    `(${ctx.tenantId}).`, "warn");
  note.id = "apps-tenant-note";
  return [note];
}

const versionText = (n) => (n ? `v${n}` : "—");

// ---- #/apps: the list --------------------------------------------------------------------------

async function renderList(root, ctx) {
  const [apps, usage] = await Promise.all([
    api("/v1/apps"),
    api(usagePath(ctx)).then((r) => r.data, () => []),
  ]);
  const spent = new Map(usage.map((row) => [row.group, row]));
  const total = apps.data.length;
  root.append(h("div.page-head", h("h1", "Apps"),
    h("span.muted#apps-total", `${total} ${total === 1 ? "App" : "Apps"}`),
    h("button#app-new", { type: "button", onclick: () => { location.hash = "#/apps/new"; } },
      "New App")),
  ...tenantNote(ctx),
  section("Apps", table([
    { label: "Name", cell: (a) => h("a", { href: `#/apps/${encodeURIComponent(a.id)}` }, a.name) },
    { label: "ID", cell: (a) => h("code", a.id) },
    { label: "Published", cell: (a) => (a.published_version
      ? badge(versionText(a.published_version), "published") : h("span.muted", "none")) },
    { label: "Latest", cell: (a) => versionText(a.latest_version) },
    { label: "Updated", cell: (a) => unix(a.updated_at) },
    { label: "Requests", cell: (a) => int(spent.get(a.id)?.requests ?? 0), num: true },
    { label: "Spend", cell: (a) => money(spent.get(a.id)?.cost_micros ?? 0), num: true },
  ], apps.data, { empty: "No Apps yet: build one with New App.",
    rowAttrs: (a) => ({ dataset: { appId: a.id } }) })),
  notice("A client calls an App by its id: POST /v1/responses with \"prompt\": {\"id\": " +
    "\"app_…\", \"variables\": {…}} (the published version, or \"version\": \"3\"), or the " +
    "simpler POST /v1/apps/{id}/chat. Requests and spend count every call of the App.", "info"));
}

// ---- #/apps/new --------------------------------------------------------------------------------

async function renderNew(root, ctx) {
  const builder = appBuilder(await choices(ctx));
  const name = input("name", { required: true, id: "app-name", placeholder: "Handbook helper",
    autocomplete: "off", size: 32 });
  const el = form([field("Name", name), builder.el], "Create App", async (values) => {
    const made = await api("/v1/apps", { method: "POST",
      body: { name: values.name.trim(), config: builder.config() } });
    location.hash = `#/apps/${encodeURIComponent(made.id)}`;
  });
  el.id = "app-form";
  el.querySelector("button[type=submit]").id = "app-save";
  root.append(h("div.page-head", h("a", { href: "#/apps" }, "← Apps"), h("h1", "New App")),
    ...tenantNote(ctx),
    section("Configuration", el),
    notice("Creating the App saves this configuration as its version 1; test it, publish it " +
      "and issue its keys on the App's page.", "info"));
  name.focus();
}

// ---- #/apps/<id> -------------------------------------------------------------------------------

function secretBox(created) {
  const copy = h("button.ghost", { type: "button", onclick: async () => {
    await navigator.clipboard?.writeText(created.secret);
    copy.textContent = "Copied";
  } }, "Copy");
  return h("div.secret",
    h("strong", `Key “${created.name}” issued. Copy its secret now: it is shown only once.`),
    h("div.secret-value", h("code#app-key-secret", created.secret), copy));
}

function keyPanel(path, app) {
  const out = h("div");
  const el = form([field("Key name", input("name", { id: "app-key-name", autocomplete: "off",
    placeholder: `app ${app.id}`, size: 28 }))], "Issue key", async (values) => {
    const body = values.name.trim() ? { name: values.name.trim() } : {};
    out.replaceChildren(secretBox(await api(`${path}/keys`, { method: "POST", body })));
  }, { inline: true });
  el.id = "app-key-form";
  return section("Keys", h("p.muted", "A key issued here may call only this App (POST " +
    "/v1/responses with its prompt, or POST /v1/apps/{id}/chat): give it to the client " +
    "that embeds the App. Revoke it on the Keys page."), el, out);
}

/** The App's public chat page: off by default; on, it serves the published version. */
function embedPanel(path, app, onChanged) {
  const out = h("div#app-embed");
  function draw() {
    const url = `${location.origin}/apps/${app.id}`;
    const toggle = h(app.embed ? "button.ghost#app-embed-toggle" : "button#app-embed-toggle",
      { type: "button", onclick: async () => {
        app = await api(path, { method: "POST", body: { embed: !app.embed } });
        onChanged(app);
        draw();
      } }, app.embed ? "Turn the public page off" : "Turn the public page on");
    out.replaceChildren(
      h("p.muted", "Anyone with the link can chat with the published version, with no key: " +
        "visitors act as the App's own embed key (billed to this tenant, held to that key's " +
        "limits; revoke it on the Keys page to close the page)."),
      app.embed ? h("p", "Public at ", h("a#app-embed-url", { href: url, target: "_blank" }, url),
        app.published_version ? "" : " (nothing is served until a version is published)") :
        h("p.muted", "The public page is off."),
      app.embed ? h("p", h("code", `<iframe src="${url}" width="420" height="600"></iframe>`)) : "",
      toggle);
  }
  draw();
  return section("Public page", out);
}

function headline(app) {
  return [h("h1", app.name), h("code", app.id),
    app.published_version ? badge(`published ${versionText(app.published_version)}`, "published")
      : badge("unpublished"),
    h("span.muted", `latest ${versionText(app.latest_version)}`)];
}

async function renderApp(root, ctx, appId) {
  const path = appPath(appId);
  const [first, listed, picks] = await Promise.all([
    api(path), api(`${path}/versions`), choices(ctx),
  ]);
  let app = first;
  let versions = listed.data;
  let editing = versions[0].version; // the latest: building goes on from there
  const head = h("div.page-head#app-head");
  const builder = appBuilder(picks);
  const chat = chatPanel(appId, usagePath(ctx));
  const loaded = h("p.muted#app-editing");
  const saved = h("div#app-saved");
  const note = input("note", { id: "app-note", autocomplete: "off", size: 40,
    placeholder: "what changed (optional)" });

  function open(version) {
    editing = version.version;
    builder.load(version.config);
    chat.setVersion(version.version, version.config);
    loaded.textContent = `Version ${editing} loaded; saving makes version ` +
      `${app.latest_version + 1}. The test chat calls version ${editing} as saved.`;
    draw();
  }

  function draw() {
    head.replaceChildren(h("a", { href: "#/apps" }, "← Apps"), ...headline(app));
    versionsView.draw(app, versions, editing);
  }

  const versionsView = versionsPanel(path, {
    onOpen: (version) => {
      saved.replaceChildren();
      open(version);
      builder.el.scrollIntoView({ block: "start", behavior: "smooth" });
    },
    onPublished: (updated) => {
      app = updated;
      draw();
    },
  });

  const editor = form([builder.el, field("Note", note)], "Save as new version", async () => {
    const made = await api(`${path}/versions`, { method: "POST",
      body: { config: builder.config(), note: note.value.trim() || null } });
    [app, versions] = await Promise.all([api(path), api(`${path}/versions`).then((r) => r.data)]);
    note.value = "";
    saved.replaceChildren(notice(`Saved version ${made.version}.`, "info"));
    open(made);
  });
  editor.id = "app-form";
  editor.querySelector("button[type=submit]").id = "app-save";

  root.append(head, ...tenantNote(ctx),
    h("div.app-workbench",
      h("section.panel#app-builder-panel", h("h2", "Configuration"), loaded, saved, editor),
      chat.el),
    versionsView.el,
    keyPanel(path, app),
    embedPanel(path, app, (updated) => {
      app = updated;
      draw();
    }));
  open(versions[0]);
  await chat.showSpend();
}

export async function render(root, ctx) {
  const id = location.hash.replace(/^#\/?/, "").split("/")[1];
  if (id === "new") await renderNew(root, ctx);
  else if (id) await renderApp(root, ctx, decodeURIComponent(id));
  else await renderList(root, ctx);
}
