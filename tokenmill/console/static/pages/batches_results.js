// Batch results: a batch's output and error files (JSONL, one answered request a line),
// downloaded whole, or previewed on the batch's page from their first lines.
import { api, download } from "../api.js";
import { guarded, h, notice, section, table } from "../ui.js";

const PREVIEW_LINES = 20;
const EXCERPT_CHARS = 240;
/** [kind, label, the batch's field]: the two files a batch writes. */
const FILES = [["output", "Output", "output_file_id"], ["error", "Errors", "error_file_id"]];

/** Download buttons for the batch's output and error files, disabled while a file is absent. */
export function fileButtons(batch, status) {
  return FILES.map(([kind, label, key]) => h("button.ghost", { type: "button",
    disabled: !batch[key], dataset: { file: kind },
    title: batch[key] ? `${batch.id}_${kind}.jsonl` : `No ${kind} file (yet).`,
    onclick: guarded(status, () =>
      download(`/v1/files/${batch[key]}/content`, `${batch.id}_${kind}.jsonl`)) }, label));
}

/** The first `count` lines of a file, from a stream that is dropped once they have come (an
 *  output file can be large); `more` when the file may go on. */
async function firstLines(fileId, count) {
  const response = await api(`/v1/files/${fileId}/content`, { raw: true });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let finished = false;
  while (!finished && text.split("\n").length <= count) {
    const { value, done } = await reader.read();
    if (value) text += value;
    finished = done;
  }
  if (!finished) await reader.cancel().catch(() => {});
  const lines = text.split("\n").filter((line) => line.trim());
  return { lines: lines.slice(0, count), more: !finished || lines.length > count };
}

function excerpt(text) {
  const flat = String(text ?? "").trim();
  return flat.length > EXCERPT_CHARS ? `${flat.slice(0, EXCERPT_CHARS)}…` : flat;
}

/** What one line says: the answer's text, the embeddings' shape, or why it failed. */
function answer(line) {
  if (line.error) return `${line.error.code}: ${line.error.message}`;
  const body = line.response?.body;
  if (body?.error) return `${body.error.code ?? body.error.type}: ${body.error.message}`;
  const choice = body?.choices?.[0];
  if (choice?.message) {
    return choice.message.content ?? JSON.stringify(choice.message.tool_calls ?? null);
  }
  if (choice && "text" in choice) return choice.text;
  if (Array.isArray(body?.data)) {
    const first = body.data[0]?.embedding;
    const shape = typeof first === "string" ? "base64" : `${first?.length ?? 0} dimensions`;
    return `${body.data.length} ${body.data.length === 1 ? "embedding" : "embeddings"}, ${shape}`;
  }
  return JSON.stringify(body ?? null);
}

function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { custom_id: "?", error: { code: "unreadable_line", message: text } };
  }
}

function previewTable(lines) {
  return table([
    { label: "Custom ID", cell: (l) => h("code", l.custom_id) },
    { label: "Status", cell: (l) => String(l.response?.status_code ?? "not sent") },
    { label: "Answer", cell: (l) => h("span.answer", excerpt(answer(l))) },
    { label: "Tokens", cell: (l) => String(l.response?.body?.usage?.total_tokens ?? "—"),
      num: true },
  ], lines.map(parsed), { empty: "The file is empty.",
    rowAttrs: (l) => ({ dataset: { customId: l.custom_id } }) });
}

/** The batch page's results panel. `update(batch)` on each refresh shows the batch's files once
 *  they exist, each previewed once. */
export function resultsPanel() {
  const slots = Object.fromEntries(FILES.map(([kind]) => [kind, h(`div#batch-${kind}`)]));
  const panel = section("Results", ...Object.values(slots));
  panel.hidden = true;
  const shown = new Set();

  async function preview(batch, [kind, label, key]) {
    const fileId = batch[key];
    shown.add(fileId);
    const head = h("h3", `${label} `, h("code", fileId));
    slots[kind].replaceChildren(head, h("p.muted", "Loading…"));
    try {
      const { lines, more } = await firstLines(fileId, PREVIEW_LINES);
      const rest = `The first ${PREVIEW_LINES} lines; download the file for all of them.`;
      slots[kind].replaceChildren(head, previewTable(lines), ...(more ? [h("p.muted", rest)] : []));
    } catch (error) {
      slots[kind].replaceChildren(head, notice(error.message));
    }
  }

  function update(batch) {
    panel.hidden = !FILES.some(([, , key]) => batch[key]);
    for (const file of FILES) {
      if (batch[file[2]] && !shown.has(batch[file[2]])) preview(batch, file);
    }
  }
  return { panel, update };
}
