"""Admin actions into the audit log (``control.audit``), and the routes that read it.

    GET /admin/v1/audit?tenant_id=&since=&before_seq=&limit=   (a tenant admin: its own)
    GET /admin/v1/audit/verify                                 (platform admin)

Every POST, PATCH and DELETE under ``/admin/v1`` by an admin key to a known route is
recorded, refused ones too, with the object as a GET of the same path showed it before and
after (a POST: what it answered). A tenant admin reads its own tenant's entries, without the
key ids and addresses of anyone outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tokenmill.control.access import require_platform_admin
from tokenmill.control.audit import Action
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import InvalidRequest, NotFound, TokenmillError
from tokenmill.gateway.http import HttpRequest, Response

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler

MAX_LIMIT = 1000
Run = Callable[["Handler", "Call"], Awaitable[Any]]


async def audited(
    admin: AdminApi, request: HttpRequest, handler: Handler, call: Call, run: Run
) -> Any:
    """Runs ``handler`` and appends what it did to the audit log."""
    from tokenmill.gateway.admin import match

    path = request.path_params["admin_path"].strip("/")

    async def snapshot() -> Any:
        try:
            getter, params = match("GET", path)
            found = await run(getter, call.__class__(call.principal, params, {}, {}))
        except TokenmillError:
            return None
        return found if isinstance(found, dict) else None

    before = await snapshot() if request.method in ("PATCH", "DELETE") else None
    status, after = 500, None
    try:
        result = await run(handler, call)
        status = result.status if isinstance(result, Response) else 200
        if request.method == "PATCH":
            after = await snapshot()
        elif request.method == "POST" and isinstance(result, dict):
            after = result
        return result
    except TokenmillError as exc:
        status = exc.status
        raise
    finally:
        await record(admin, request, call, status, before, after)


async def record(
    admin: AdminApi, request: HttpRequest, call: Call, status: int, before: Any, after: Any
) -> None:
    """Appends one action to the log (nothing when the gateway has none)."""
    if admin.audit is None:
        return
    path = request.path_params["admin_path"].strip("/")
    action = Action(
        actor_key_id=call.principal.key_id,
        actor_role=call.principal.role.value,
        actor_tenant_id=call.principal.tenant_id,
        tenant_id=_tenant_of(path, call, before, after),
        method=request.method,
        path=f"/admin/v1/{path}",
        status=status,
        address=request.client_address,
        request=call.body or None,
        before=before,
        after=after,
    )
    await asyncio.to_thread(admin.audit.append, action)


def _tenant_of(path: str, call: Call, before: Any, after: Any) -> str | None:
    """The tenant acted upon: named in the path, else the object's, else the caller's own."""
    if path.startswith("tenants/") and call.params:
        return call.params[0]
    if path == "tenants" and isinstance(after, dict) and isinstance(after.get("id"), str):
        return str(after["id"])  # a tenant just created
    for found in (after, before):
        if isinstance(found, dict) and isinstance(found.get("tenant_id"), str):
            return str(found["tenant_id"])
    if call.principal.role != Role.PLATFORM_ADMIN:
        return call.principal.tenant_id
    return None


def list_entries(admin: AdminApi, call: Call) -> Any:
    from tokenmill.gateway.admin import _when

    audit = _audit(admin)
    tenant_id = call.query.get("tenant_id")
    if call.principal.role != Role.PLATFORM_ADMIN:
        if tenant_id not in (None, call.principal.tenant_id):
            raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")
        tenant_id = call.principal.tenant_id
    limit = _int(call.query, "limit", 100)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit is 1 to {MAX_LIMIT}.", param="limit")
    before_seq = _int(call.query, "before_seq", None)
    if before_seq is not None and not 0 <= before_seq < 2**63:  # what a sequence column holds
        raise InvalidRequest("before_seq is a sequence number (0 or more).", param="before_seq")
    since = _when(call.query["since"], "since") if "since" in call.query else None
    found = audit.list(tenant_id, since=since, before_seq=before_seq, limit=limit + 1)
    return {
        "object": "list",
        "data": [_shown(r.as_json(), call.principal) for r in found[:limit]],
        "has_more": len(found) > limit,
    }


def _shown(entry: dict[str, Any], viewer: Principal) -> dict[str, Any]:
    """A tenant admin sees who acted only among its own tenant's keys: that the platform or
    another tenant acted, not with which key or from where."""
    own = entry["actor_tenant_id"] == viewer.tenant_id and entry["actor_role"] != (
        Role.PLATFORM_ADMIN.value
    )
    if viewer.role != Role.PLATFORM_ADMIN and not own:
        entry.update(actor_key_id=None, actor_tenant_id=None, address=None)
    return entry


def verify(admin: AdminApi, call: Call) -> Any:
    require_platform_admin(call.principal)
    return _audit(admin).verify().as_json()


def _audit(admin: AdminApi) -> Any:
    if admin.audit is None:
        raise NotFound("The audit log is not enabled on this gateway.", code="not_found")
    return admin.audit


def _int(query: dict[str, str], name: str, default: int | None) -> Any:
    if name not in query:
        return default
    try:
        return int(query[name])
    except ValueError:
        raise InvalidRequest(f"{name} is an integer.", param=name) from None


ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("audit",), list_entries),
    ("GET", ("audit", "verify"), verify),
]
