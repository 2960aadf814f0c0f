// Knowledge search: one vector store's hybrid search (POST /v1/vector_stores/{id}/search) with
// its attribute filters and ranking options, and the scored passages it answers with.
import { api } from "../api.js";
import { field, form, h, input, intOrNull, jsonOrNull, section } from "../ui.js";

const FILTER_EXAMPLE = '{"type": "eq", "key": "topic", "value": "tea"}';

/** A file's attributes as "key: value" chips (values as JSON, so their type shows). */
export function attributeList(attributes) {
  const entries = Object.entries(attributes || {});
  if (!entries.length) return h("span.muted", "—");
  return h("span.attributes", entries.map(([key, value]) =>
    h("code.attribute", `${key}: ${JSON.stringify(value)}`)));
}

/** A number from a form's text; `fallback` when it is blank. */
function number(value, label, fallback) {
  if (value === undefined || String(value).trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`${label} must be a number.`);
  return n;
}

/** The search request of the form's values; the API validates the rest and says what is wrong. */
function request(values) {
  const body = {
    query: values.query,
    max_num_results: intOrNull(values.max_num_results) ?? 10,
    ranking_options: {
      score_threshold: number(values.score_threshold, "Score threshold", 0),
      hybrid_search: {
        embedding_weight: number(values.embedding_weight, "Embedding weight", 1),
        text_weight: number(values.text_weight, "Text weight", 1),
      },
    },
  };
  const filters = jsonOrNull(values.filters, "Filters");
  if (filters !== null) body.filters = filters;
  return body;
}

function passage(result, index) {
  return h("article.passage", { dataset: { fileId: result.file_id, rank: index + 1 } },
    h("div.passage-head",
      h("span.rank", `${index + 1}.`),
      h("strong.filename", result.filename),
      h("span.score", { title: "fused score, 0 to 1" }, result.score.toFixed(3)),
      attributeList(result.attributes)),
    (result.content || []).map((part) => h("p.passage-text", part.text)));
}

/** The search panel of the store at `path` (/v1/vector_stores/{id}). */
export function searchPanel(path) {
  const results = h("div#search-results");
  const numeric = (name, attrs) => input(name, { type: "number", ...attrs });
  const fields = [
    field("Query", input("query", { required: true, id: "search-query", autocomplete: "off",
      placeholder: "how hot should water be for green tea" })),
    h("div.options",
      field("Max results", numeric("max_num_results", { min: 1, max: 50, value: 10,
        id: "search-max" })),
      field("Score threshold", numeric("score_threshold", { min: 0, max: 1, step: "any",
        value: 0, id: "search-threshold" })),
      field("Embedding weight", numeric("embedding_weight", { min: 0, step: "any", value: 1,
        id: "search-embedding-weight" })),
      field("Text weight", numeric("text_weight", { min: 0, step: "any", value: 1,
        id: "search-text-weight" }))),
    field("Filters (JSON, optional)",
      h("textarea#search-filters", { name: "filters", rows: 2, spellcheck: false,
        placeholder: FILTER_EXAMPLE }),
      "OpenAI's comparison (eq ne gt gte lt lte in nin) or compound (and, or) filters on the " +
      "files' attributes."),
  ];
  const el = form(fields, "Search", async (values) => {
    results.replaceChildren();
    const page = await api(`${path}/search`, { method: "POST", body: request(values) });
    const found = page.data.length;
    results.replaceChildren(
      h("p.muted#search-summary",
        `${found} ${found === 1 ? "passage" : "passages"} for “${page.search_query.join(" · ")}”`),
      ...(found ? page.data.map(passage) : [h("p.empty", "No passage matched.")]));
  });
  el.id = "search-form";
  return section("Search", el, results);
}
