"""An App's public chat page (``/apps/{id}``), off until an admin turns ``embed`` on.

The page and its ``POST /apps/{id}/chat`` need no key: they act as the App's own embed key,
made when the page is first turned on, so what visitors spend is billed to the tenant and held
to that key's limits (set its ``rpm_limit`` to bound it; revoke it to close the page). Only a
published version is served; an App that is not public is a 404, as if it did not exist.

The page is made to be framed by other sites, so unlike the console it allows any frame
ancestor; its one inline style and script run by a nonce new with each answer, and nothing
else runs or loads.
"""

from __future__ import annotations

import asyncio
import html
import secrets

from tokenmill.control.keys import Principal
from tokenmill.errors import NotFound
from tokenmill.gateway.app_prompts import apps_of
from tokenmill.gateway.apps import chat_turn
from tokenmill.gateway.http import HttpRequest, Response
from tokenmill.gateway.services import Services

PATH_PARAM = "embed_path"
HTML = b"text/html; charset=utf-8"


async def _public(services: Services, app_id: str) -> tuple[str, Principal]:
    found = await asyncio.to_thread(apps_of(services).public, app_id)
    principal = None
    if found is not None and found[0].embed_key_id is not None and services.admin is not None:
        principal = await asyncio.to_thread(services.admin.keys.principal, found[0].embed_key_id)
    if found is None or principal is None or principal.revoked:
        raise NotFound(f"No public App '{app_id}'.", code="not_found")
    return found[0].name, principal


async def embed(services: Services, request: HttpRequest) -> Response:
    app_id, _, rest = request.path_params[PATH_PARAM].partition("/")
    name, principal = await _public(services, app_id)
    if rest == "chat" and request.method == "POST":
        if services.responses is None:
            raise NotFound("The Responses API is not enabled on this gateway.", code="not_found")
        return await chat_turn(services, principal, services.responses, request, app_id)
    if rest or request.method != "GET":
        raise NotFound(f"No route {request.method} {request.path}.", code="not_found")
    nonce = secrets.token_urlsafe(18)
    page = (
        PAGE.replace("{{nonce}}", nonce)
        .replace("{{app}}", html.escape(app_id))
        .replace("{{name}}", html.escape(name))
    )
    return Response(page.encode(), 200, HTML, {"cache-control": "no-store", **headers(nonce)})


def headers(nonce: str) -> dict[str, str]:
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors *"
    )
    return {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{name}}</title>
<link rel="icon" href="data:,">
<style nonce="{{nonce}}">
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 720px; margin: 0 auto; padding: 16px; }
h1 { font-size: 18px; margin: 8px 0 16px; }
.turn { background: #fff; border: 1px solid #dde1e8; border-radius: 8px; padding: 10px 12px;
  margin-bottom: 10px; white-space: pre-wrap; }
.user { background: #eef4ff; }
.cite { color: #5b6472; font-size: 13px; margin-top: 6px; }
.error { color: #b42318; }
form { display: flex; gap: 8px; }
textarea { flex: 1; font: inherit; padding: 8px; border-radius: 8px; border: 1px solid #c9ced8; }
button { font: inherit; padding: 8px 16px; border-radius: 8px; border: 0; background: #1f6feb;
  color: #fff; cursor: pointer; }
</style></head>
<body><main>
<h1>{{name}}</h1>
<div id="turns"></div>
<form id="ask"><textarea id="message" rows="2" placeholder="Ask a question" required></textarea>
<button type="submit">Send</button></form>
</main>
<script nonce="{{nonce}}">
const app = "{{app}}";
let conversation = null;
const turns = document.getElementById("turns");
function add(text, kind) {
  const div = document.createElement("div");
  div.className = "turn " + kind;
  div.textContent = text;
  turns.append(div);
  return div;
}
document.getElementById("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = document.getElementById("message");
  const message = box.value.trim();
  if (!message) return;
  box.value = "";
  add(message, "user");
  const waiting = add("…", "bot");
  const body = { message };
  if (conversation) body.conversation_id = conversation;
  const reply = await fetch(`/apps/${app}/chat`, { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const data = await reply.json();
  if (!reply.ok) { waiting.textContent = data.error.message; waiting.classList.add("error");
    return; }
  conversation = data.conversation_id;
  waiting.textContent = data.answer || "(no answer)";
  const files = [...new Set(data.citations.map((c) => c.filename))];
  if (files.length) {
    const cite = document.createElement("div");
    cite.className = "cite";
    cite.textContent = "Sources: " + files.join(", ");
    waiting.append(cite);
  }
});
</script></body></html>
"""
