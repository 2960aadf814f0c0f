// Playground: streaming chat with any visible model, its parameters, and each answer's
// usage and cost (the cost is the platform's own, read from the request's usage record).
import { api, streamChat } from "../api.js";
import { int, money, num, seconds } from "../format.js";
import { field, h, input, notice, select } from "../ui.js";

const COST_POLL_MS = 500;
const COST_POLL_TRIES = 40;

async function recordedCost(requestId) {
  for (let i = 0; i < COST_POLL_TRIES; i++) {
    try {
      return await api(`/admin/v1/requests/${encodeURIComponent(requestId)}`);
    } catch (error) {
      if (error.status !== 404) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, COST_POLL_MS));
  }
  return null;
}

/** Chat models (and their aliases) this key may use, by the library's task. */
export async function chatModels() {
  const visible = new Set((await api("/v1/models")).data.map((m) => m.id));
  const library = (await api("/admin/v1/models")).data.filter((m) => m.task === "chat");
  const names = library.flatMap((m) => [m.id, ...(m.aliases || []).map((a) => a.name)]);
  return names.filter((name) => visible.has(name)).map((id) => ({ id }));
}

function message(role, text) {
  return h(`div.message.${role}`, h("div.role", role), h("div.content", text));
}

function params() {
  return {
    system: h("textarea", { name: "system", rows: 3, placeholder: "You are a helpful assistant." }),
    temperature: input("temperature", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7 }),
    top_p: input("top_p", { type: "number", min: 0, max: 1, step: 0.05, value: 1 }),
    max_tokens: input("max_tokens", { type: "number", min: 1, max: 4096, value: 128 }),
    seed: input("seed", { type: "number", placeholder: "random" }),
    tier: select("service_tier", [["auto", "auto (the key's default)"], ["priority", "priority"],
      ["default", "default"], ["flex", "flex"]], "auto"),
  };
}

export async function render(root, ctx) {
  const chat = await chatModels();
  const model = select("model", chat.map((m) => [m.id, m.id]), chat[0]?.id);
  const p = params();
  const log = h("div.chat-log#chat-log");
  const prompt = h("textarea#prompt", { rows: 3, placeholder: "Ask something… (Ctrl+Enter sends)" });
  const send = h("button#send", { type: "submit" }, "Send");
  const stop = h("button.ghost", { type: "button", disabled: true }, "Stop");
  const clear = h("button.ghost", { type: "button" }, "Clear");
  const history = [];
  let controller = null;

  clear.addEventListener("click", () => { history.length = 0; log.replaceChildren(); });
  stop.addEventListener("click", () => controller?.abort());
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) composer.requestSubmit();
  });

  async function ask(text) {
    history.push({ role: "user", content: text });
    log.append(message("user", text));
    const answer = message("assistant", "");
    const meta = h("div.meta", "…");
    answer.append(meta);
    log.append(answer);
    const content = answer.querySelector(".content");
    const messages = p.system.value.trim()
      ? [{ role: "system", content: p.system.value.trim() }, ...history] : [...history];
    const body = { model: model.value, messages, temperature: Number(p.temperature.value),
      top_p: Number(p.top_p.value), max_tokens: Number(p.max_tokens.value) };
    if (p.seed.value !== "") body.seed = Number(p.seed.value);
    body.service_tier = p.tier.value;
    controller = new AbortController();
    const started = performance.now();
    try {
      const result = await streamChat(body, (delta) => {
        content.textContent += delta;
        log.scrollTop = log.scrollHeight;
      }, controller.signal);
      history.push({ role: "assistant", content: content.textContent });
      const u = result.usage || {};
      const decoding = (performance.now() - started - (result.ttftMs || 0)) / 1000;
      meta.replaceChildren(h("span.usage",
        `${int(u.prompt_tokens)} prompt + ${int(u.completion_tokens)} completion tokens`),
        ` · first token ${seconds(result.ttftMs / 1000)}`,
        decoding > 0 ? ` · ${num((u.completion_tokens || 0) / decoding, 1)} tokens/s` : "",
        ` · ${result.finishReason || "?"}`, ` · ${result.serviceTier || "?"} tier`, " · ",
        h("span.cost", "cost …"));
      const record = await recordedCost(result.requestId);
      meta.querySelector(".cost").textContent = record ? `cost ${money(record.cost_micros)}`
        : "cost not recorded yet";
      meta.dataset.requestId = result.requestId;
    } catch (error) {
      meta.replaceChildren(notice(error.name === "AbortError" ? "Stopped." : error.message));
      if (error.name === "AbortError" && content.textContent) {
        history.push({ role: "assistant", content: content.textContent });
      }
    }
  }

  const composer = h("form.composer", prompt, h("div.actions", send, stop, clear));
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || !model.value) return;
    prompt.value = "";
    send.disabled = true;
    stop.disabled = false;
    try {
      await ask(text);
    } finally {
      send.disabled = false;
      stop.disabled = true;
      prompt.focus();
    }
  });

  root.append(h("div.page-head", h("h1", "Playground"),
      h("span.muted", `${chat.length} models visible to this key`)),
    h("div.playground",
      h("aside.params", field("Model", model), field("System prompt", p.system),
        field("Temperature", p.temperature), field("Top p", p.top_p),
        field("Max tokens", p.max_tokens), field("Seed", p.seed),
        field("Service tier", p.tier)),
      h("div.conversation", log, composer)));
  if (!chat.length) log.append(notice("No chat model is visible to this key.", "info"));
  prompt.focus();
}
