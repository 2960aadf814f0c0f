// An App's versions (GET /v1/apps/{id}/versions), newest first: open one in the builder,
// publish one (POST /v1/apps/{id} {"published_version"}), and compare two
// (GET /v1/apps/{id}/diff?from=&to=) as a table of the field paths that changed.
import { api } from "../api.js";
import { unix } from "../format.js";
import { badge, field, guarded, h, notice, section, select, table } from "../ui.js";

/** A diff value: JSON, or a muted dash where the path is absent (or null). */
function value(v) {
  if (v === null || v === undefined) return h("span.muted", "—");
  return h("code", JSON.stringify(v));
}

function diffTable(result) {
  return table([
    { label: "Path", cell: (c) => h("code", c.path) },
    { label: `Version ${result.from}`, cell: (c) => value(c.before) },
    { label: `Version ${result.to}`, cell: (c) => value(c.after) },
  ], result.changes, { empty: `Versions ${result.from} and ${result.to} are the same.`,
    rowAttrs: (c) => ({ dataset: { path: c.path } }) });
}

/** The versions panel of the App at `path` (/v1/apps/{id}). onOpen(version) loads one into
 *  the builder; onPublished(app) runs after a publish. draw(app, versions, editing) redraws. */
export function versionsPanel(path, { onOpen, onPublished }) {
  const list = h("div#app-versions");
  const status = h("div");
  const from = select("from", []);
  const to = select("to", []);
  from.id = "app-diff-from";
  to.id = "app-diff-to";
  const result = h("div#app-diff");
  let latest = null; // the newest version the selects were drawn with
  const compare = h("button.ghost#app-diff-run", { type: "submit" }, "Compare");
  const compareForm = h("form.inline#app-diff-form", field("From", from), field("To", to),
    compare);
  const run = guarded(status, async () => {
    const query = `from=${encodeURIComponent(from.value)}&to=${encodeURIComponent(to.value)}`;
    result.replaceChildren(diffTable(await api(`${path}/diff?${query}`)));
  });
  compareForm.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });

  function draw(app, versions, editing) {
    list.replaceChildren(table([
      { label: "Version", cell: (v) => h("div", h("strong", `v${v.version}`), " ",
        Number(v.version) === app.published_version && badge("published"),
        v.version === editing && badge("editing", "in_progress")) },
      { label: "Note", cell: (v) => v.note || h("span.muted", "—") },
      { label: "Model", cell: (v) => h("code", v.config.model) },
      { label: "Saved", cell: (v) => unix(v.created_at) },
      { label: "", cell: (v) => h("div.row-actions",
        h("button.ghost.open", { type: "button", disabled: v.version === editing,
          onclick: () => onOpen(v) }, "Open"),
        h("button.publish", { type: "button",
          disabled: Number(v.version) === app.published_version,
          onclick: guarded(status, async () => {
            const updated = await api(path, { method: "POST",
              body: { published_version: v.version } });
            await onPublished(updated);
          }) }, "Publish")) },
    ], versions, { rowAttrs: (v) => ({ dataset: { version: v.version } }) }));
    const options = versions.map((v) => h("option", { value: v.version }, `v${v.version}`));
    const [keepFrom, keepTo] = [from.value, to.value];
    from.replaceChildren(...options.map((o) => o.cloneNode(true)));
    to.replaceChildren(...options);
    if (versions[0]?.version === latest) { // the same versions: the pair picked stays
      [from.value, to.value] = [keepFrom, keepTo];
    } else { // a new version: the last change, the one before it to the latest
      latest = versions[0]?.version;
      to.value = latest ?? "";
      from.value = versions[1]?.version ?? latest ?? "";
    }
    compare.disabled = versions.length < 2;
  }

  const el = section("Versions", status, list,
    h("h3", "Compare two versions"),
    compareForm,
    result,
    notice("A call that names no version gets the published one (the latest while none is). " +
      "A saved version never changes.", "info"));
  el.id = "app-versions-panel";
  return { el, draw, clearDiff: () => result.replaceChildren() };
}
