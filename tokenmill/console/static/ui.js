// Small DOM helpers: elements, tables, forms, notices, polling. No templates, no innerHTML of data.

const POLL_MS = 1000;

/** h("div.card#id", {onclick, ...attrs}, ...children) */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...rest] = spec.split(/(?=[.#])/);
  const el = document.createElement(tag || "div");
  for (const part of rest) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs instanceof Node || typeof attrs !== "object" || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && name !== "list") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export const section = (title, ...children) =>
  h("section.panel", h("h2", title), ...children);

/** A table: columns [{label, cell: row => node|string, num?}], rows. */
export function table(columns, rows, { empty = "Nothing here yet.", rowAttrs } = {}) {
  if (!rows.length) return h("p.empty", empty);
  return h("table.grid",
    h("thead", h("tr", columns.map((c) => h(c.num ? "th.num" : "th", c.label)))),
    h("tbody", rows.map((row) => h("tr", rowAttrs ? rowAttrs(row) : {},
      columns.map((c) => h(c.num ? "td.num" : "td", c.cell(row)))))));
}

/** A stat tile. */
export const stat = (label, value, note) =>
  h("div.stat", h("div.stat-label", label), h("div.stat-value", value), note && h("div.stat-note", note));

export function field(label, input, hint) {
  return h("label.field", h("span", label), input, hint && h("small", hint));
}

export const input = (name, attrs = {}) => h("input", { name, ...attrs });

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) =>
    h("option", { value: v, selected: v === value }, label)));
}

/** A form whose submit calls onSubmit(values) and shows its error in place. */
export function form(fields, submitLabel, onSubmit, { inline = false } = {}) {
  const status = h("div.form-status");
  const button = h("button", { type: "submit" }, submitLabel);
  const el = h(inline ? "form.inline" : "form.stacked", fields, h("div.actions", button, status));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    status.className = "form-status";
    button.disabled = true;
    try {
      await onSubmit(Object.fromEntries(new FormData(el)), el);
    } catch (error) {
      status.textContent = error.message;
      status.className = "form-status error";
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** An inline form that uploads with a progress bar: `button#{id}`, `progress#{id}-progress`,
 *  `span#{id}-status`. onSubmit(progress) runs with the button disabled; progress(fraction, text)
 *  moves the bar; the text it resolves to, or the error it throws, is shown after. */
export function uploadForm(fields, submitLabel, onSubmit, { id }) {
  const button = h(`button#${id}`, { type: "submit" }, submitLabel);
  const bar = h(`progress#${id}-progress`, { max: 1, value: 0, hidden: true });
  const label = h(`span.muted#${id}-status`);
  const el = h("form.inline", fields, h("div.actions", button, bar, label));
  const progress = (fraction, text) => {
    bar.hidden = false;
    bar.value = fraction;
    label.textContent = text;
  };
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    label.className = "muted";
    try {
      label.textContent = (await onSubmit(progress)) ?? "";
    } catch (error) {
      label.className = "form-status error";
      label.textContent = error.message;
    } finally {
      button.disabled = false;
      bar.hidden = true;
    }
  });
  return el;
}

export const notice = (text, kind = "error") => h(`div.notice.${kind}`, text);

export const badge = (text, kind = text) => h(`span.badge.${String(kind).replace(/\W/g, "")}`, text);

/** Integer or null from a form value. */
export function intOrNull(value) {
  if (value === undefined || value === null || String(value).trim() === "") return null;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`${value} is not a whole number`);
  return n;
}

/** A JSON value from a form's text, or null when the text is blank. */
export function jsonOrNull(value, what) {
  if (value === undefined || value === null || String(value).trim() === "") return null;
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new Error(`${what}: not valid JSON (${error.message}).`);
  }
}

/** A refresh that reruns `draw` (which answers "still busy?") every POLL_MS while busy.
 *  A refresh asked for while one runs makes it draw once more, so no change is missed. */
export function poller(ctx, draw) {
  let busy = false;
  let again = false;
  let running = null;
  function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        busy = await draw();
      } while (again);
    })().finally(() => { running = null; });
    return running;
  }
  ctx.every(POLL_MS, () => { if (busy) refresh().catch(() => {}); });
  return refresh;
}

/** A button's click handler whose failure is shown in `status` rather than lost. */
export function guarded(status, action) {
  return async () => {
    status.replaceChildren();
    try {
      await action();
    } catch (error) {
      status.replaceChildren(notice(error.message));
    }
  };
}
