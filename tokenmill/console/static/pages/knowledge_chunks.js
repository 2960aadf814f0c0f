// Knowledge chunks: one file's chunks in a vector store, as indexing cut them (GET
// /v1/vector_stores/{id}/files/{file_id}/chunks, tokenmill's extension), a page at a time.
import { api } from "../api.js";
import { int } from "../format.js";
import { h, notice } from "../ui.js";

const PAGE = 20;

function chunk(c) {
  return h("article.chunk", { dataset: { position: c.position } },
    h("div.chunk-head",
      h("span.rank", `#${c.position}`),
      h("span.muted.tokens", `${int(c.tokens)} ${c.tokens === 1 ? "token" : "tokens"}`),
      h("span.muted.chars", { title: "characters of the file's text" },
        `chars ${int(c.char_start)}–${int(c.char_end)}`)),
    h("pre.chunk-text", c.text));
}

/** The chunks panel of the store at `path` (/v1/vector_stores/{id}), hidden until `show`
 *  opens a file; "Load more" asks for the chunks after the last one shown. */
export function chunksPanel(path) {
  const title = h("h2");
  const summary = h("p.muted#chunks-summary");
  const list = h("div#chunk-list");
  const status = h("div");
  const more = h("button.ghost#chunks-more", { type: "button", hidden: true }, "Load more");
  const el = h("section.panel#file-chunks", { hidden: true }, title, summary, list, status, more);
  let shown = null; // { fileId, after, count }: the file on show and how far it is read

  /** Appends the next page of `file` unless another file was opened meanwhile. */
  async function load(file) {
    more.disabled = true;
    status.replaceChildren();
    try {
      const query = `?limit=${PAGE}${file.after === null ? "" : `&after=${file.after}`}`;
      const page = await api(`${path}/files/${encodeURIComponent(file.fileId)}/chunks${query}`);
      if (shown !== file) return;
      list.append(...page.data.map(chunk));
      file.count += page.data.length;
      if (page.data.length) file.after = page.last_id;
      summary.textContent = `${int(file.count)} ${file.count === 1 ? "chunk" : "chunks"}` +
        (page.has_more ? " shown so far" : "");
      if (!file.count) list.replaceChildren(h("p.empty", "No chunks: nothing indexed."));
      more.hidden = !page.has_more;
    } catch (error) {
      if (shown === file) status.replaceChildren(notice(error.message));
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", () => shown && load(shown));

  async function show(fileId, name) {
    shown = { fileId, after: null, count: 0 };
    title.textContent = `Chunks of ${name}`;
    summary.textContent = "";
    list.replaceChildren();
    more.hidden = true;
    el.hidden = false;
    await load(shown);
    el.scrollIntoView({ block: "nearest" });
  }

  function hide() {
    shown = null;
    el.hidden = true;
  }

  return { el, show, hide };
}
