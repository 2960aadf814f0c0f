// The App builder: one App configuration (tokenmill/apps/config.py) as a form. The model, the
// instructions with their {{variables}} and default values, file search over vector stores,
// function tools (JSON), the tenant's MCP servers by label, sampling, guardrails and the query
// rewriting step. What the form does not show (top_p, an MCP server's allowed_tools) is kept
// from the version loaded.
import { field, h, input, intOrNull, select } from "../ui.js";

/** A {{name}} in the instructions, as the platform finds them (config.VARIABLE). */
const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}/g;
const SEARCH = [["auto", "auto (the model decides)"], ["always", "always (search first)"]];
const APPROVALS = [["never", "never"], ["always", "always"]];
const FUNCTIONS_EXAMPLE = '[{"name": "get_order", "description": "An order by its number.",\n' +
  '  "parameters": {"type": "object", "properties": {"number": {"type": "string"}}}}]';

/** The variables the instructions use, in order of first use. */
export function variablesOf(instructions) {
  return [...new Set([...String(instructions ?? "").matchAll(VARIABLE)].map((m) => m[1]))];
}

/** A number from a form's text, or null when it is blank. */
function numberOrNull(value, label) {
  if (String(value ?? "").trim() === "") return null;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`${label} must be a number.`);
  return n;
}

/** The function tools' textarea as a list: [{name, description?, parameters?}, ...]. */
function functionsOf(text) {
  if (!text.trim()) return [];
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`Function tools: not valid JSON (${error.message}).`);
  }
  if (!Array.isArray(value)) throw new Error("Function tools: a JSON list of functions.");
  value.forEach((f, i) => {
    if (!f || typeof f !== "object" || Array.isArray(f) || typeof f.name !== "string" || !f.name) {
      throw new Error(`Function tools: item ${i} needs a "name".`);
    }
  });
  return value;
}

function storeLabel(s) {
  const files = s.file_counts?.completed ?? 0;
  return `${s.name || s.id} (${files} ${files === 1 ? "file" : "files"})`;
}

/** Checkboxes of the tenant's vector stores; ids of the loaded config that are gone are kept
 *  (and marked) so a save does not drop them unseen. */
function storePicker(stores) {
  const el = h("div.options#app-stores");
  function draw(chosen) {
    const known = new Set(stores.map((s) => s.id));
    const rows = [...stores.map((s) => [s.id, storeLabel(s)]),
      ...chosen.filter((id) => !known.has(id)).map((id) => [id, `${id} (not found)`])];
    el.replaceChildren(...(rows.length ? rows.map(([id, label]) => h("label",
      h("input", { type: "checkbox", name: "vector_store", value: id,
        checked: chosen.includes(id) }), ` ${label}`))
      : [h("span.muted", "No vector stores yet (Knowledge).")]));
  }
  const chosen = () => [...el.querySelectorAll("input:checked")].map((i) => i.value);
  return { el, draw, chosen };
}

/** A checkbox per MCP server label with its approval policy; the loaded entries' other fields
 *  (allowed_tools) are kept. */
function mcpPicker(servers) {
  const el = h("div#app-mcp");
  let loaded = new Map();
  function draw(entries) {
    loaded = new Map(entries.map((e) => [e.server_label, e]));
    const labels = [...new Set([...servers.map((s) => s.server_label), ...loaded.keys()])];
    const registered = new Set(servers.map((s) => s.server_label));
    el.replaceChildren(...(labels.length ? labels.map((label) => {
      const entry = loaded.get(label);
      const approval = select("require_approval", APPROVALS,
        typeof entry?.require_approval === "string" ? entry.require_approval : "never");
      approval.setAttribute("aria-label", `Approval for ${label}`);
      return h("div.row-actions.mcp-choice", { dataset: { label } },
        h("label", h("input", { type: "checkbox", name: "mcp_server", value: label,
          checked: Boolean(entry) }), " ", h("code", label),
        !registered.has(label) && h("span.muted", " (not registered)")),
        h("span.muted", "approval"), approval);
    }) : [h("span.muted", "No MCP servers registered (MCP).")]));
  }
  function chosen() {
    return [...el.querySelectorAll(".mcp-choice")].filter((row) =>
      row.querySelector("input").checked).map((row) => ({
      ...(loaded.get(row.dataset.label) || {}),
      server_label: row.dataset.label,
      require_approval: row.querySelector("select").value,
    }));
  }
  return { el, draw, chosen };
}

/** Inputs for the default value of each variable the instructions use; typed values survive
 *  edits of the instructions. */
function variableInputs() {
  const el = h("div.options#app-variables");
  const values = new Map();
  function draw(names) {
    for (const i of el.querySelectorAll("input")) values.set(i.dataset.variable, i.value);
    el.replaceChildren(...(names.length ? names.map((name) => field(`{{${name}}}`,
      input(`var_${name}`, { id: `app-var-${name}`, value: values.get(name) ?? "", size: 18,
        placeholder: "no default", dataset: { variable: name }, autocomplete: "off" })))
      : [h("span.muted", "None: write {{name}} in the instructions to add one.")]));
  }
  function load(defaults) {
    values.clear();
    for (const [name, value] of Object.entries(defaults || {})) values.set(name, value);
  }
  /** The defaults given: a blank input is no default (each call must give a value). */
  const defaults = () => Object.fromEntries([...el.querySelectorAll("input")]
    .filter((i) => i.value !== "").map((i) => [i.dataset.variable, i.value]));
  return { el, draw, load, defaults };
}

function controls({ models, stores, servers }) {
  const modelOptions = models.map((m) => [m.id, m.id]);
  const c = {
    model: select("model", modelOptions, models[0]?.id),
    instructions: h("textarea#app-instructions", { name: "instructions", rows: 6,
      placeholder: "You answer questions about {{product}}. Cite your sources." }),
    variables: variableInputs(),
    stores: storePicker(stores),
    maxResults: input("max_num_results", { type: "number", min: 1, max: 50,
      id: "app-max-results", placeholder: "default" }),
    search: select("search", SEARCH, "auto"),
    functions: h("textarea#app-functions", { name: "functions", rows: 4, spellcheck: false,
      placeholder: FUNCTIONS_EXAMPLE }),
    functionsStatus: h("small#app-functions-status"),
    mcp: mcpPicker(servers),
    temperature: input("temperature", { type: "number", min: 0, max: 2, step: 0.1,
      id: "app-temperature", placeholder: "model's" }),
    maxOutput: input("max_output_tokens", { type: "number", min: 1, id: "app-max-output",
      placeholder: "none" }),
    guardMax: input("guard_max_output_tokens", { type: "number", min: 1, id: "app-guard-max",
      placeholder: "none" }),
    blocked: h("textarea#app-blocked", { name: "blocked_topics", rows: 3,
      placeholder: "one topic per line" }),
    rewrite: select("rewrite_model", [["", "none"], ...modelOptions], ""),
  };
  c.model.id = "app-model";
  c.search.id = "app-search";
  c.rewrite.id = "app-rewrite";
  return c;
}

/** Adds `value` to a model select that does not offer it (a model no longer visible). */
function ensureOption(selectEl, value) {
  if (!value || [...selectEl.options].some((o) => o.value === value)) return;
  selectEl.append(h("option", { value }, `${value} (not visible to this key)`));
}

/** The builder over `choices` ({models, stores, servers}). load(config) fills it in;
 *  config() is the configuration of its values (throws on a value it cannot take). */
export function appBuilder(choices) {
  const c = controls(choices);
  let base = {};

  const syncVariables = () => c.variables.draw(variablesOf(c.instructions.value));
  const syncFunctions = () => {
    try {
      const n = functionsOf(c.functions.value).length;
      c.functionsStatus.textContent = n ? `${n} ${n === 1 ? "function" : "functions"}` : "";
      c.functionsStatus.className = "";
    } catch (error) {
      c.functionsStatus.textContent = error.message;
      c.functionsStatus.className = "error";
    }
  };
  const syncSearch = () => {
    const none = !c.stores.chosen().length;
    c.maxResults.disabled = none;
    c.search.disabled = none;
  };
  c.instructions.addEventListener("input", syncVariables);
  c.functions.addEventListener("input", syncFunctions);
  c.stores.el.addEventListener("change", syncSearch);

  function load(config) {
    base = structuredClone(config || {});
    ensureOption(c.model, base.model);
    if (base.model) c.model.value = base.model;
    c.instructions.value = base.instructions ?? "";
    c.variables.load(base.variables);
    syncVariables();
    c.stores.draw(base.vector_store_ids || []);
    c.maxResults.value = base.max_num_results ?? "";
    c.search.value = base.search || "auto";
    c.functions.value = base.functions?.length ? JSON.stringify(base.functions, null, 2) : "";
    syncFunctions();
    c.mcp.draw(base.mcp || []);
    c.temperature.value = base.temperature ?? "";
    c.maxOutput.value = base.max_output_tokens ?? "";
    c.guardMax.value = base.guardrails?.max_output_tokens ?? "";
    c.blocked.value = (base.guardrails?.blocked_topics || []).join("\n");
    const rewrite = base.steps?.rewrite_model || "";
    ensureOption(c.rewrite, rewrite);
    c.rewrite.value = rewrite;
    syncSearch();
  }

  function config() {
    const out = { ...base };
    out.model = c.model.value;
    if (!out.model) throw new Error("Pick a model.");
    out.instructions = c.instructions.value;
    out.variables = c.variables.defaults();
    out.vector_store_ids = c.stores.chosen();
    out.max_num_results = intOrNull(c.maxResults.value);
    out.search = c.search.value;
    out.functions = functionsOf(c.functions.value);
    out.mcp = c.mcp.chosen();
    out.temperature = numberOrNull(c.temperature.value, "Temperature");
    out.max_output_tokens = intOrNull(c.maxOutput.value);
    out.guardrails = {
      max_output_tokens: intOrNull(c.guardMax.value),
      blocked_topics: c.blocked.value.split("\n").map((t) => t.trim()).filter(Boolean),
    };
    out.steps = { rewrite_model: c.rewrite.value || null };
    for (const key of ["max_num_results", "temperature", "max_output_tokens"]) {
      if (out[key] === null) delete out[key];
    }
    return out;
  }

  const el = h("div.app-builder",
    h("div.options", field("Model", c.model)),
    field("Instructions", c.instructions, "{{name}} is a variable: a call gives its value " +
      "(prompt.variables), else its default below."),
    h("div.field", h("span", "Variables and their defaults"), c.variables.el,
      h("small", "Blank: no default, each call must give a value.")),
    h("h4", "File search"),
    h("div.field", h("span", "Vector stores"), c.stores.el),
    h("div.options", field("Max results", c.maxResults), field("Search", c.search),
      field("Query rewriting model", c.rewrite, "with search always: rewrites the question " +
        "into the search query")),
    h("h4", "Tools"),
    field("Function tools (JSON)", c.functions, c.functionsStatus),
    h("div.field", h("span", "MCP servers"), c.mcp.el),
    h("h4", "Sampling and guardrails"),
    h("div.options", field("Temperature", c.temperature),
      field("Max output tokens", c.maxOutput),
      field("Guardrail: max output tokens", c.guardMax, "a cap no call can lift")),
    field("Blocked topics", c.blocked, "One per line; a question that names one is refused " +
      "before any model is called."));
  load({});
  return { el, load, config };
}
