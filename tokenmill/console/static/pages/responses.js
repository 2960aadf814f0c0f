// Responses: OpenAI's Responses API tried out (POST /v1/responses, streamed) with a model, its
// instructions and file search over one of the tenant's vector stores; each send continues the
// last response (previous_response_id) until "New conversation". A response's items are drawn
// as their events arrive (responses_items.js); the stored responses are listed below it
// (responses_stored.js).
import { api, streamEvents } from "../api.js";
import { field, h, input, intOrNull, notice, select } from "../ui.js";
import { chatModels } from "./playground.js";
import { itemView, outcome } from "./responses_items.js";
import { storedResponses } from "./responses_stored.js";

const TERMINAL = new Set(["response.completed", "response.incomplete", "response.failed"]);
const SEARCH_STATUS = {
  "response.file_search_call.in_progress": "in_progress",
  "response.file_search_call.searching": "searching",
  "response.file_search_call.completed": "completed",
};
const TOOL_CHOICES = [["auto", "auto"], ["file_search", "file_search (forced)"], ["none", "none"]];
const DEFAULT_RESULTS = 5;

/** One response as its events arrive: each output item redrawn as it changes, then how the
 *  response ended. handle(event) answers the response once it is final, else null. */
function liveResponse() {
  const list = h("div.items");
  const meta = h("div.turn-meta", h("span.muted", "Sending…"));
  const el = h("div.turn", list, meta);
  let items = [];
  let views = [];

  function draw(index) {
    const view = itemView(items, index);
    if (views[index]) views[index].replaceWith(view);
    else list.append(view);
    views[index] = view;
  }

  function finish(response) {
    items = response.output;
    views = [];
    list.replaceChildren();
    items.forEach((_, i) => draw(i));
    el.dataset.status = response.status;
    meta.replaceChildren(h("code", response.id), outcome(response));
    return response;
  }

  function handle({ type, data }) {
    if (TERMINAL.has(type)) return finish(data.response);
    if (type === "response.created" || type === "response.in_progress") {
      el.dataset.responseId = data.response.id;
      meta.replaceChildren(h("code", data.response.id), h("span.muted", "in progress…"));
      return null;
    }
    const index = data.output_index;
    if (type === "response.output_item.added" || type === "response.output_item.done") {
      items[index] = data.item;
      draw(index);
      return null;
    }
    const item = items[index];
    const part = item?.content?.[data.content_index ?? 0];
    if (!item) return null;
    if (type === "response.content_part.added" || type === "response.content_part.done") {
      item.content[data.content_index] = data.part;
    } else if (type === "response.output_text.delta" && part) {
      part.text += data.delta;
    } else if (type === "response.output_text.annotation.added" && part) {
      (part.annotations ||= []).push(data.annotation);
    } else if (type === "response.output_text.done" && part) {
      part.text = data.text;
    } else if (type === "response.function_call_arguments.delta") {
      item.arguments = (item.arguments || "") + data.delta;
    } else if (type === "response.function_call_arguments.done") {
      item.arguments = data.arguments;
    } else if (SEARCH_STATUS[type]) {
      item.status = SEARCH_STATUS[type];
    } else {
      return null;
    }
    draw(index);
    return null;
  }

  return { el, handle, fail: (node) => meta.append(node) };
}

/** The tenant's vector stores, or null when they cannot be listed. */
async function vectorStores() {
  try {
    return (await api("/v1/vector_stores?limit=100")).data;
  } catch (error) {
    if (error.status === 401) throw error;
    return null;
  }
}

function controls(chat, stores) {
  const storeOptions = (stores || []).map((s) =>
    [s.id, `${s.name || s.id} (${s.file_counts.completed} ` +
      `${s.file_counts.completed === 1 ? "file" : "files"})`]);
  const c = {
    model: select("model", chat.map((m) => [m.id, m.id]), chat[0]?.id),
    instructions: h("textarea#responses-instructions", { name: "instructions", rows: 3,
      placeholder: "You are a helpful assistant." }),
    maxOutput: input("max_output_tokens", { type: "number", min: 1, value: 256,
      id: "responses-max-output" }),
    store: select("vector_store", [["", stores ? "none" : "(vector stores unavailable)"],
      ...storeOptions], ""),
    maxResults: input("max_num_results", { type: "number", min: 1, max: 50,
      value: DEFAULT_RESULTS, id: "responses-max-results" }),
    toolChoice: select("tool_choice", TOOL_CHOICES, "auto"),
  };
  c.model.id = "responses-model";
  c.store.id = "responses-store";
  c.toolChoice.id = "responses-tool-choice";
  c.store.disabled = !stores?.length;
  const sync = () => {
    c.maxResults.disabled = !c.store.value;
    c.toolChoice.disabled = !c.store.value;
  };
  c.store.addEventListener("change", sync);
  sync();
  return c;
}

/** The request of the controls' values, streamed, with the file search results included. */
function request(c, text, previous) {
  const body = { model: c.model.value, input: text, stream: true,
    include: ["file_search_call.results"] };
  const instructions = c.instructions.value.trim();
  if (instructions) body.instructions = instructions;
  const limit = intOrNull(c.maxOutput.value);
  if (limit !== null) body.max_output_tokens = limit;
  if (previous) body.previous_response_id = previous;
  if (c.store.value) {
    body.tools = [{ type: "file_search", vector_store_ids: [c.store.value],
      max_num_results: intOrNull(c.maxResults.value) ?? DEFAULT_RESULTS }];
    const choice = c.toolChoice.value;
    body.tool_choice = choice === "file_search" ? { type: "file_search" } : choice;
  }
  return body;
}

export async function render(root, ctx) {
  const [chat, stores] = await Promise.all([chatModels(), vectorStores()]);
  const c = controls(chat, stores);
  const log = h("div.chat-log#responses-log");
  const prompt = h("textarea#responses-input", { rows: 3,
    placeholder: "Ask something… (Ctrl+Enter sends)" });
  const send = h("button#responses-send", { type: "submit" }, "Send");
  const stop = h("button.ghost#responses-stop", { type: "button", disabled: true }, "Stop");
  const fresh = h("button.ghost#responses-new", { type: "button" }, "New conversation");
  const thread = h("span.muted#responses-thread");
  const status = h("div.form-status");
  let previous = null; // the response the next send continues
  let controller = null;
  const stored = storedResponses({ onDeleted: (id) => {
    if (id === previous) continueFrom(null);
  } });

  function continueFrom(id) {
    previous = id;
    thread.replaceChildren(...(id ? ["continues ", h("code", id)] : ["a new conversation"]));
  }

  async function ask(body) {
    log.append(h("div.message.user", h("div.role", "user"), h("div.content", body.input)));
    const turn = liveResponse();
    log.append(turn.el);
    controller = new AbortController();
    let final = null;
    try {
      for await (const event of streamEvents("/v1/responses", body, controller.signal)) {
        final = turn.handle(event) ?? final;
        if (!root.isConnected) controller.abort(); // the page was left
        log.scrollTop = log.scrollHeight;
      }
      if (!final) turn.fail(notice("The stream ended before the response finished."));
    } catch (error) {
      const stopped = error.name === "AbortError";
      turn.fail(notice(stopped ? "Stopped." : error.message, stopped ? "info" : "error"));
    }
    if (final) continueFrom(final.id); // stored (the console never sends store: false)
    log.scrollTop = log.scrollHeight;
    await stored.reload();
  }

  const composer = h("form.composer", prompt, h("div.actions", send, stop, fresh, thread, status));
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || !c.model.value) return;
    status.textContent = "";
    status.className = "form-status";
    let body;
    try {
      body = request(c, text, previous);
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status error";
      return;
    }
    prompt.value = "";
    send.disabled = true;
    stop.disabled = false;
    try {
      await ask(body);
    } finally {
      send.disabled = false;
      stop.disabled = true;
      prompt.focus();
    }
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) composer.requestSubmit();
  });
  stop.addEventListener("click", () => controller?.abort());
  fresh.addEventListener("click", () => {
    controller?.abort();
    continueFrom(null);
    log.replaceChildren();
    prompt.focus();
  });
  continueFrom(null);

  root.append(h("div.page-head", h("h1", "Responses"),
      h("span.muted", `${chat.length} chat models visible to this key`)),
    h("div.playground",
      h("aside.params", field("Model", c.model), field("Instructions", c.instructions),
        field("Max output tokens", c.maxOutput),
        field("Vector store", c.store, "Adds the file_search tool."),
        field("Max results", c.maxResults), field("Tool choice", c.toolChoice)),
      h("div.conversation", log, composer)),
    ...stored.panels,
    notice(`Responses belong to the signed-in key's tenant (${ctx.me.tenant_id}): each runs ` +
      "the model and the platform's file search until an answer, and is stored to be read, " +
      "continued (previous_response_id) or deleted.", "info"));
  if (!chat.length) log.append(notice("No chat model is visible to this key.", "info"));
  await stored.reload();
  prompt.focus();
}
