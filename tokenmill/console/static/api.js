// The console's only door to the platform: its JSON APIs, with the signed-in key.
const KEY = "tokenmill.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(json) {
  const out = { authorization: `Bearer ${session.key}` };
  if (json) out["content-type"] = "application/json";
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const error = (await response.json()).error;
    message = error.message;
    code = error.code;
  } catch { /* not OpenAI's error shape */ }
  return new ApiError(response.status, message, code);
}

/** A JSON API call; throws ApiError on any non-2xx answer. */
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return raw ? response : response.json();
}

/** Downloads a file the API serves behind the key (fetch, then a blob link). */
export async function download(path, filename) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** POST /v1/files with XMLHttpRequest, for its upload progress events. */
export function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/files");
    xhr.setRequestHeader("authorization", `Bearer ${session.key}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new ApiError(xhr.status, xhr.response?.error?.message
        || `${xhr.status} ${xhr.statusText}`, xhr.response?.error?.code));
    };
    xhr.onerror = () => reject(new Error("The upload failed: the connection broke."));
    const body = new FormData();
    body.append("purpose", purpose);
    body.append("file", file, file.name);
    xhr.send(body);
  });
}

/** Streams a chat completion: calls onDelta(text) per token, resolves to
 *  {requestId, usage, ttftMs, finishReason, serviceTier}. */
export async function streamChat(body, onDelta, signal) {
  const started = performance.now();
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(true),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const result = { requestId: response.headers.get("x-request-id"), usage: null, ttftMs: null,
    finishReason: null, serviceTier: null };
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return result;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message, chunk.error.code);
        if (chunk.usage) result.usage = chunk.usage;
        if (chunk.service_tier) result.serviceTier = chunk.service_tier;
        for (const choice of chunk.choices || []) {
          const text = choice.delta?.content;
          if (text) {
            if (result.ttftMs === null) result.ttftMs = performance.now() - started;
            onDelta(text);
          }
          if (choice.finish_reason) result.finishReason = choice.finish_reason;
        }
      }
    }
  }
  return result;
}

const DONE = Symbol("done");

/** One server-sent event's block: {type, data} (the `event:` line's type, else the data's own
 *  `type`), DONE for `data: [DONE]`, or null for a block with no data (a comment, a ping). */
function sseEvent(block) {
  let type = null;
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") type = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return DONE;
  const parsed = JSON.parse(text);
  type ||= parsed.type || "message";
  if (type === "error") {
    const error = parsed.error || parsed;
    throw new ApiError(500, error.message || "The stream failed.", error.code);
  }
  return { type, data: parsed };
}

/** POSTs `body` to `path` and yields its server-sent events as {type, data}, data parsed as
 *  JSON (the Responses API's stream). Ends with the stream or at `data: [DONE]`; throws
 *  ApiError for a refused request or an `error` event; `signal` aborts it. */
export async function* streamEvents(path, body, signal) {
  const response = await fetch(path, {
    method: "POST", headers: headers(true), body: JSON.stringify(body), signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let blank;
      while ((blank = /\r?\n\r?\n/.exec(buffer))) {
        const event = sseEvent(buffer.slice(0, blank.index));
        buffer = buffer.slice(blank.index + blank[0].length);
        if (event === DONE) return;
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {}); // a consumer that stops early closes the stream
  }
}
