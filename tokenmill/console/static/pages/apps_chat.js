// The App's test chat: one version of the App called as a client calls it, POST /v1/responses
// with "prompt": {"id", "version", "variables"}, each turn continuing the last
// (previous_response_id). Per turn: the answer with its citations, the tool calls (file search
// with its scored results, function and MCP calls), the tokens, and what the platform recorded
// for the App meanwhile (GET /admin/v1/tenants/{id}/usage?group_by=app&since=).
import { api } from "../api.js";
import { int, money } from "../format.js";
import { badge, field, h, input, notice } from "../ui.js";
import { variablesOf } from "./apps_builder.js";
import { itemView, outcome } from "./responses_items.js";

const COST_POLL_MS = 500;
const COST_POLL_TRIES = 20;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text ?? "");
  }
}

/** The MCP items the Responses page does not draw: calls, tool lists, approval requests. */
function mcpView(item) {
  if (item.type === "mcp_list_tools") {
    return h("div.item.mcp-tools", h("div.item-head", h("span.kind", "mcp tools"),
      h("code", item.server_label), item.error && badge("failed")),
    h("span.attributes", (item.tools || []).map((t) => h("code.attribute", t.name))),
    item.error && h("div.last-error", item.error));
  }
  const waiting = item.type === "mcp_approval_request";
  return h("div.item.mcp-call", h("div.item-head",
    h("span.kind", waiting ? "mcp call awaiting approval" : "mcp call"),
    h("code.fn-name", `${item.server_label}.${item.name}`),
    item.error ? badge("failed") : item.status && badge(item.status)),
  h("pre.arguments", pretty(item.arguments)),
  !waiting && item.output != null && h("pre.arguments.output", pretty(item.output)),
  item.error && h("div.last-error", item.error),
  waiting && h("p.muted", "The test chat approves no calls: set the server's approval to " +
    "never to let the App call it."));
}

function itemsOf(response) {
  const items = response.output || [];
  if (!items.length) return h("p.empty", "No output.");
  return h("div.items", items.map((item, index) => {
    const view = item.type.startsWith("mcp_") ? mcpView(item) : itemView(items, index);
    view.dataset.type = item.type;
    return view;
  }));
}

/** The App's usage row over [since, now), or null (GET ...usage?group_by=app). */
async function appUsage(usagePath, appId, since) {
  const query = since ? `&since=${encodeURIComponent(since)}` : "";
  const rows = (await api(`${usagePath}${query}`)).data;
  return rows.find((r) => r.group === appId) || null;
}

/** What was recorded for the App since the response began, once it holds the response's own
 *  tokens (usage records are written a moment after the answer); null if they never show. */
async function costSince(usagePath, appId, response) {
  const since = new Date(response.created_at * 1000).toISOString();
  const want = response.usage || { input_tokens: 0, output_tokens: 0 };
  for (let i = 0; i < COST_POLL_TRIES; i++) {
    const row = await appUsage(usagePath, appId, since);
    if (row && row.prompt_tokens >= want.input_tokens
      && row.completion_tokens >= want.output_tokens) return row;
    await sleep(COST_POLL_MS);
  }
  return null;
}

/** The test chat of the App `appId`; setVersion(version, config) picks what it calls. */
export function chatPanel(appId, usagePath) {
  const log = h("div.chat-log#app-chat-log");
  const variables = h("div.options#app-chat-variables");
  const spend = h("span.muted#app-spend");
  const heading = h("span#app-chat-version");
  const prompt = h("textarea#app-chat-input", { rows: 2,
    placeholder: "Ask the App something… (Ctrl+Enter sends)" });
  const send = h("button#app-chat-send", { type: "submit" }, "Send");
  const fresh = h("button.ghost#app-chat-new", { type: "button" }, "New conversation");
  const thread = h("span.muted#app-chat-thread");
  let version = null;
  let previous = null;

  function continueFrom(id) {
    previous = id;
    thread.replaceChildren(...(id ? ["continues ", h("code", id)] : ["a new conversation"]));
  }

  async function showSpend() {
    const row = await appUsage(usagePath, appId, null);
    spend.textContent = row
      ? `This App so far: ${int(row.requests)} ${row.requests === 1 ? "request" : "requests"}, ` +
        `${money(row.cost_micros)} ` +
        "(all versions and callers)"
      : "This App has no recorded usage yet.";
  }

  function setVersion(number, config) {
    if (number === version) return;
    if (log.querySelector(".turn")) {
      log.append(h("p.muted.version-change", `Now testing version ${number}: a new conversation.`));
    }
    version = number;
    continueFrom(null);
    heading.replaceChildren("Testing ", h("strong", `version ${number}`), " as saved");
    const names = variablesOf(config.instructions);
    variables.replaceChildren(...(names.length ? names.map((name) =>
      field(`{{${name}}}`, input(`chat_${name}`, { id: `app-chat-var-${name}`, size: 18,
        dataset: { variable: name }, autocomplete: "off",
        placeholder: config.variables?.[name] ?? "required" })))
      : [h("span.muted", "The instructions use none.")]));
  }

  function request(text) {
    const given = Object.fromEntries([...variables.querySelectorAll("input")]
      .filter((i) => i.value !== "").map((i) => [i.dataset.variable, i.value]));
    const body = { prompt: { id: appId, version: String(version), variables: given },
      input: text, include: ["file_search_call.results"], stream: false };
    if (previous) body.previous_response_id = previous;
    return body;
  }

  async function ask(text) {
    const body = request(text);
    log.append(h("div.message.user", h("div.role", "user"), h("div.content", text)));
    const meta = h("div.turn-meta", h("span.muted", `Asking version ${version}…`));
    const turn = h("div.turn", { dataset: { version } }, meta);
    log.append(turn);
    log.scrollTop = log.scrollHeight;
    let response;
    try {
      response = await api("/v1/responses", { method: "POST", body });
    } catch (error) {
      turn.dataset.status = "refused";
      meta.replaceChildren(notice(error.message));
      return;
    }
    Object.assign(turn.dataset, { responseId: response.id, status: response.status });
    const cost = h("span.turn-cost", { title: "What the platform recorded for this App from " +
      "the moment this turn began: its model and tool calls, and any other call of the App " +
      "meanwhile." }, "cost: recording…");
    meta.replaceChildren(h("code", response.id), outcome(response), cost);
    turn.prepend(itemsOf(response));
    continueFrom(response.id);
    log.scrollTop = log.scrollHeight;
    const row = await costSince(usagePath, appId, response);
    cost.textContent = row
      ? `App spend since this turn began: ${money(row.cost_micros)}`
      : "cost: not recorded yet (see Usage)";
    if (row) cost.dataset.costMicros = row.cost_micros;
    await showSpend();
  }

  const composer = h("form.composer#app-chat", prompt,
    h("div.actions", send, fresh, thread));
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || version === null) return;
    prompt.value = "";
    send.disabled = true;
    try {
      await ask(text);
    } finally {
      send.disabled = false;
      prompt.focus();
    }
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) composer.requestSubmit();
  });
  fresh.addEventListener("click", () => {
    continueFrom(null);
    log.replaceChildren();
    prompt.focus();
  });
  continueFrom(null);

  const el = h("section.panel#app-chat-panel",
    h("div.detail-head", h("h2", "Test chat"), heading),
    h("div.field", h("span", "Variables (blank: the default)"), variables),
    log, composer, h("div.turn-meta", spend));
  return { el, setVersion, showSpend };
}
