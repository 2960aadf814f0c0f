// A response's items as the console shows them, streamed or stored: messages (an answer's file
// citations as numbered markers that lead to the passages cited), file searches with their
// query, status and results, function calls and their outputs; and a response's outcome.
import { int } from "../format.js";
import { badge, h, notice } from "../ui.js";

const SNIPPET_CHARS = 220;
const FLASH_MS = 1600;
/** A citation marker the model wrote ("[2]", "[1, 3]"), replaced by the console's own. */
const WRITTEN_MARKER = /^[[【]\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*[\]】]/;
const REASONS = { max_output_tokens: "the output limit (max_output_tokens) was reached" };

function snippet(text) {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS)}…` : flat;
}

/** The latest file search before items[index]: the results an answer there cites. */
function searchBefore(items, index) {
  for (let i = index - 1; i >= 0; i--) {
    if (items[i]?.type === "file_search_call") return items[i];
  }
  return null;
}

/** Scrolls to the passages of `fileId` that the search `searchId` found, and flashes them. */
function showCited(from, searchId, fileId) {
  const root = from.closest(".items") || document;
  const passages = [...root.querySelectorAll(".fs-result")]
    .filter((el) => el.dataset.searchId === searchId && el.dataset.fileId === fileId);
  if (!passages.length) return;
  passages[0].scrollIntoView({ block: "nearest", behavior: "smooth" });
  for (const el of passages) {
    el.classList.add("flash");
    setTimeout(() => el.classList.remove("flash"), FLASH_MS);
  }
}

/** An answer's text with its file citations as markers [1], [2]… numbered by cited file in
 *  order of first citation, and the list of the files they name. */
function citedText(part, search) {
  const text = part.text ?? "";
  const citations = (part.annotations || []).filter((a) => a.type === "file_citation")
    .sort((a, b) => a.index - b.index);
  const cited = new Map(); // file id -> [its number, its first citation]
  for (const c of citations) if (!cited.has(c.file_id)) cited.set(c.file_id, [cited.size + 1, c]);
  const cite = (c) => h("sup.cite", h("button", { type: "button", title: c.filename || c.file_id,
    dataset: { fileId: c.file_id },
    onclick: (event) => showCited(event.currentTarget, search?.id, c.file_id),
  }, `[${cited.get(c.file_id)[0]}]`));

  const nodes = [];
  let at = 0;
  for (let k = 0; k < citations.length;) {
    const index = Math.min(Math.max(citations[k].index, at), text.length);
    const group = new Map();
    const first = citations[k].index;
    for (; k < citations.length && citations[k].index === first; k++) {
      group.set(citations[k].file_id, citations[k]);
    }
    nodes.push(text.slice(at, index), [...group.values()].map(cite));
    at = index + (WRITTEN_MARKER.exec(text.slice(index))?.[0].length ?? 0);
  }
  nodes.push(text.slice(at));
  const sources = [...cited.values()].map(([, c]) =>
    h("li", cite(c), " ", c.filename || h("code", c.file_id)));
  return [h("div.content", nodes),
    sources.length > 0 && h("div.sources", h("span.muted", "Sources"), h("ul", sources))];
}

function messageView(item, search) {
  const parts = (item.content || []).map((part) => (part.type === "output_text"
    ? citedText(part, search) : h("div.content", part.text ?? "")));
  return h(`div.message.${item.role}`, h("div.role", item.role), parts,
    item.status === "incomplete" && h("div.meta", badge("incomplete")));
}

function searchResults(item) {
  const results = item.results;
  if (!Array.isArray(results)) {
    return h("p.muted", item.status === "completed" ? "Results not included." : "Searching…");
  }
  if (!results.length) return h("p.empty", "No passage matched.");
  return h("ol.fs-results", results.map((r) => h("li.passage.fs-result",
    { dataset: { fileId: r.file_id, searchId: item.id } },
    h("div.passage-head", h("strong.filename", r.filename || r.file_id),
      h("span.score", { title: "fused score, 0 to 1" },
        typeof r.score === "number" ? r.score.toFixed(3) : "—")),
    h("p.passage-text", snippet(r.text)))));
}

function searchView(item) {
  return h("div.item.file-search", h("div.item-head", h("span.kind", "file search"),
    badge(item.status), h("span.query", (item.queries || []).map((q) => `“${q}”`).join(" · "))),
  searchResults(item));
}

/** JSON shown indented once it parses (a call's arguments while they stream do not). */
function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text ?? "");
  }
}

function callView(item) {
  return h("div.item.function-call", h("div.item-head", h("span.kind", "function call"),
    h("code.fn-name", item.name), badge(item.status), h("code.muted", item.call_id)),
  h("pre.arguments", pretty(item.arguments)));
}

function callOutputView(item) {
  return h("div.item.function-output", h("div.item-head", h("span.kind", "function output"),
    h("code.muted", item.call_id)), h("pre.arguments", pretty(item.output)));
}

/** The element of items[index]; a message's citations lead to the search before it. */
export function itemView(items, index) {
  const item = items[index];
  let view;
  if (item.type === "message") view = messageView(item, searchBefore(items, index));
  else if (item.type === "file_search_call") view = searchView(item);
  else if (item.type === "function_call") view = callView(item);
  else if (item.type === "function_call_output") view = callOutputView(item);
  else view = h("div.item", h("div.item-head", h("span.kind", item.type)),
    h("pre.arguments", JSON.stringify(item, null, 2)));
  view.dataset.type = item.type;
  if (item.id) view.dataset.itemId = item.id;
  if (item.status) view.dataset.status = item.status;
  return view;
}

/** A list of items, as `div.items` (a citation's passages are looked up within it). */
export function itemList(items, empty = "No items.") {
  if (!items.length) return h("p.empty", empty);
  return h("div.items", items.map((_, i) => itemView(items, i)));
}

/** How a response ended: its status, its tokens, and why it is incomplete or failed. */
export function outcome(response) {
  const u = response.usage;
  const why = response.incomplete_details?.reason;
  const error = response.error;
  return h("div.outcome", { dataset: { status: response.status } },
    badge(response.status),
    u && h("span.usage", `${int(u.input_tokens)} input + ${int(u.output_tokens)} output tokens`),
    why && notice(`Incomplete: ${REASONS[why] || why}.`, "warn"),
    error && notice(`Failed: ${error.code ? `${error.code}: ` : ""}${error.message}`));
}
