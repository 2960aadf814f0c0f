// The console shell: sign-in with a key, the tenant in scope, and a hash router over pages.
import { api, session } from "./api.js";
import { form, field, h, input, notice } from "./ui.js";
import * as overview from "./pages/overview.js";
import * as models from "./pages/models.js";
import * as deployments from "./pages/deployments.js";
import * as keys from "./pages/keys.js";
import * as files from "./pages/files.js";
import * as knowledge from "./pages/knowledge.js";
import * as batches from "./pages/batches.js";
import * as fineTuning from "./pages/fine_tuning.js";
import * as datasets from "./pages/datasets.js";
import * as evals from "./pages/evals.js";
import * as usage from "./pages/usage.js";
import * as levels from "./pages/levels.js";
import * as playground from "./pages/playground.js";
import * as responses from "./pages/responses.js";
import * as mcp from "./pages/mcp.js";
import * as apps from "./pages/apps.js";
import * as advice from "./pages/advice.js";
import * as audit from "./pages/audit.js";

const PAGES = {
  overview, models, deployments, keys, files, knowledge, batches, "fine-tuning": fineTuning, evals,
  datasets, usage, levels, playground, responses, mcp, apps, advice, audit,
};
const TENANT = "tokenmill.tenant";
const main = document.getElementById("main");
let timers = [];
let me = null;

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

/** What a page gets: who signed in, the tenant in scope, and timers cleared on leaving. */
function context() {
  return {
    me,
    tenantId: sessionStorage.getItem(TENANT) || me.tenant_id,
    platform: me.role === "platform_admin",
    every(ms, fn) { timers.push(setInterval(fn, ms)); },
  };
}

function signIn(message) {
  stopTimers();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const key = input("key", { type: "password", autocomplete: "off", required: true,
    placeholder: "tm-…", id: "signin-key" });
  main.replaceChildren(h("div.signin",
    h("h1", "Sign in"),
    h("p", "Use a platform-admin or tenant-admin API key. It is kept in this tab only."),
    message && notice(message),
    form([field("API key", key)], "Sign in", async ({ key: value }) => {
      session.set(value.trim());
      try {
        await start();
      } catch (error) {
        session.clear();
        throw error;
      }
    })));
  key.focus();
}

async function tenantSelector() {
  const selector = document.getElementById("tenant");
  const tenants = (await api("/admin/v1/tenants")).data;
  const current = context().tenantId;
  selector.replaceChildren(...tenants.map((t) =>
    h("option", { value: t.id, selected: t.id === current }, `${t.name}`)));
  selector.disabled = tenants.length < 2;
  selector.onchange = () => {
    sessionStorage.setItem(TENANT, selector.value);
    route();
  };
}

async function start() {
  try {
    me = await api("/admin/v1/me");
  } catch (error) {
    if (error.status === 403) throw new Error("This key may only call models; sign in with an admin key.");
    if (error.status === 401) throw new Error("That key was not accepted.");
    throw error;
  }
  const identity = document.getElementById("identity");
  identity.textContent = `${me.key_name} · ${me.role.replace("_", " ")}`;
  identity.title = identity.textContent; // the header may cut it short
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  await tenantSelector();
  if (!location.hash || location.hash === "#/signin") location.hash = "#/overview";
  else route();
}

async function route() {
  if (!me) return;
  stopTimers();
  const name = location.hash.replace(/^#\/?/, "").split("/")[0] || "overview";
  const page = PAGES[name] || overview;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#/${name}`);
  }
  const root = h(`div.page#page-${name}`);
  main.replaceChildren(root);
  const link = document.querySelector(`#nav a[href="#/${name}"]`);
  const fallback = `${name[0].toUpperCase()}${name.slice(1)}`;
  document.title = `${link ? link.title || link.textContent : fallback} · tokenmill`;
  try {
    await page.render(root, context());
  } catch (error) {
    if (error.status === 401) return signIn("Your key is no longer accepted; sign in again.");
    root.append(notice(error.message));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  sessionStorage.removeItem(TENANT);
  me = null;
  signIn();
});
window.addEventListener("hashchange", route);

if (session.key) {
  start().catch((error) => { session.clear(); signIn(error.message); });
} else {
  signIn();
}
