// Stored responses: the tenant's responses newest first (GET /v1/responses, a tokenmill
// extension), paged with "More"; one opened shows its input items and its output items (with
// the file search results) and can be deleted.
import { api } from "../api.js";
import { int, unix } from "../format.js";
import { badge, guarded, h, notice, section, table } from "../ui.js";
import { itemList, outcome } from "./responses_items.js";

const PAGE = 20;
const ITEMS = 100;
const responsePath = (id) => `/v1/responses/${encodeURIComponent(id)}`;

function tools(response) {
  const list = response.tools || [];
  if (!list.length) return h("span.muted", "—");
  return h("span.attributes", list.map((t) => h("code.attribute", t.type === "file_search"
    ? `file_search: ${(t.vector_store_ids || []).join(", ")}` : `${t.type}: ${t.name ?? ""}`)));
}

function responseCard(r) {
  const choice = typeof r.tool_choice === "string" ? r.tool_choice : JSON.stringify(r.tool_choice);
  return h("dl.card",
    h("dt", "ID"), h("dd", h("code", r.id)),
    h("dt", "Outcome"), h("dd#response-outcome", outcome(r)),
    h("dt", "Model"), h("dd", h("code", r.model)),
    h("dt", "Created"), h("dd", unix(r.created_at)),
    h("dt", "Continues"), h("dd", r.previous_response_id
      ? h("code", r.previous_response_id) : h("span.muted", "—")),
    h("dt", "Instructions"), h("dd.prewrap", r.instructions || h("span.muted", "—")),
    h("dt", "Tools"), h("dd", tools(r), r.tools?.length ? ` (tool choice ${choice})` : ""),
    h("dt", "Max output tokens"), h("dd", int(r.max_output_tokens)),
    h("dt", "Service tier"), h("dd", r.service_tier ?? "—"));
}

/** The stored responses panel and the panel of the one opened. `reload()` shows the newest
 *  page again; onDeleted(id) runs after a response is deleted here. */
export function storedResponses({ onDeleted }) {
  const list = h("div");
  const status = h("div");
  const more = h("button.ghost#responses-more", { type: "button", hidden: true }, "More");
  const total = h("span.muted#responses-total");
  const detail = h("section.panel#response-detail", { hidden: true });
  let rows = [];
  let hasMore = false;

  function draw() {
    total.textContent = `${rows.length}${hasMore ? "+" : ""} shown`;
    more.hidden = !hasMore;
    list.replaceChildren(table([
      { label: "ID", cell: (r) => h("button.link", { type: "button",
        onclick: guarded(status, () => open(r.id)) }, h("code", r.id)) },
      { label: "Model", cell: (r) => h("code", r.model) },
      { label: "Status", cell: (r) => badge(r.status) },
      { label: "Output items", cell: (r) => int(r.output?.length ?? 0), num: true },
      { label: "Tokens", cell: (r) => int(r.usage?.total_tokens ?? null), num: true },
      { label: "Created", cell: (r) => unix(r.created_at) },
    ], rows, { empty: "No stored responses yet: send one above.",
      rowAttrs: (r) => ({ dataset: { responseId: r.id, status: r.status } }) }));
  }

  async function load(after) {
    const query = `?limit=${PAGE}${after ? `&after=${encodeURIComponent(after)}` : ""}`;
    const page = await api(`/v1/responses${query}`);
    rows = after ? [...rows, ...page.data] : page.data;
    hasMore = page.has_more;
    draw();
  }

  async function remove(id) {
    if (!confirm(`Delete ${id}? It can no longer be read or continued.`)) return;
    await api(responsePath(id), { method: "DELETE" });
    detail.hidden = true;
    detail.replaceChildren();
    await load();
    onDeleted(id);
  }

  async function open(id) {
    const path = responsePath(id);
    const [response, inputs] = await Promise.all([
      api(`${path}?include[]=file_search_call.results`),
      api(`${path}/input_items?order=asc&limit=${ITEMS}`),
    ]);
    const own = h("div");
    detail.replaceChildren(
      h("div.detail-head", h("h2", "Response ", h("code", id)),
        h("button.danger#response-delete", { type: "button",
          onclick: guarded(own, () => remove(id)) }, "Delete"),
        h("button.ghost", { type: "button", onclick: () => { detail.hidden = true; } }, "Close")),
      own,
      responseCard(response),
      h("h3", "Input items"),
      h("div#response-input", itemList(inputs.data, "No input items."),
        inputs.has_more && h("p.muted", `The first ${ITEMS} input items.`)),
      h("h3", "Output items"),
      h("div#response-output", itemList(response.output, "No output items.")));
    detail.dataset.responseId = id;
    detail.hidden = false;
    detail.scrollIntoView({ block: "nearest" });
  }

  more.addEventListener("click", guarded(status, async () => {
    more.disabled = true;
    try {
      await load(rows.at(-1)?.id);
    } finally {
      more.disabled = false;
    }
  }));
  const panel = section("Stored responses", status, list, h("div.actions", more, total));
  return { panels: [panel, detail], reload: () => load().catch((error) =>
    status.replaceChildren(notice(error.message))) };
}
