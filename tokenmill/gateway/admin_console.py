"""Admin routes the web console needs beyond the core admin API.

    GET  /admin/v1/me                            who the calling key is (role, tenant)
    GET  /admin/v1/overview?window_seconds=60[&tenant_id=]
                                                 live traffic and each replica's load
    GET  /admin/v1/requests/{request_id}         one request's usage record and cost

A platform admin sees every tenant (or one, with ``tenant_id``); a tenant admin sees only its
own tenant, and only the replicas of its own dedicated deployments. Handlers are plain
functions ``(AdminApi, Call) -> Any``, appended to ``admin.ROUTES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tokenmill.billing.pricing import format_micros
from tokenmill.control.access import require_tenant
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler
    from tokenmill.gateway.routing import Router

DEFAULT_WINDOW_SECONDS = 60


def me(admin: AdminApi, call: Call) -> Any:
    principal = call.principal
    tenant = admin.tenants.get(principal.tenant_id)
    return {
        "object": "principal",
        "key_id": principal.key_id,
        "key_name": principal.key_name,
        "role": principal.role.value,
        "tenant_id": principal.tenant_id,
        "tenant_name": tenant.name if tenant is not None else None,
    }


def overview(admin: AdminApi, call: Call) -> Any:
    if admin.overview is None:
        raise NotFound("The overview is not enabled on this gateway.", code="not_found")
    principal = call.principal
    tenant_id = call.query.get("tenant_id") or None
    if tenant_id is not None:
        require_tenant(principal, tenant_id)
    elif principal.role != Role.PLATFORM_ADMIN:
        tenant_id = principal.tenant_id
    raw_window = call.query.get("window_seconds", str(DEFAULT_WINDOW_SECONDS))
    try:
        summary = admin.overview.summary(tenant_id, int(raw_window))
    except ValueError as error:
        raise InvalidRequest(str(error), param="window_seconds") from None
    deployments = admin.fleet_status() if admin.fleet_status is not None else []
    loads = admin.replica_load() if admin.replica_load is not None else {}
    return {
        **summary.as_json(),
        "tenant_id": tenant_id,
        "replicas": visible_replicas(principal, deployments, loads),
    }


def visible_replicas(
    principal: Principal,
    deployments: Sequence[Mapping[str, Any]],
    loads: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Every replica of the deployments the caller may see, each with its deployment's id,
    mode and tenant and its requests in flight (None when the gateway does not know)."""
    out = []
    for deployment in deployments:
        own = deployment.get("tenant_id") == principal.tenant_id
        if principal.role != Role.PLATFORM_ADMIN and not own:
            continue
        for replica in deployment.get("replicas", []):
            out.append(
                {
                    **replica,
                    "deployment_id": deployment.get("id"),
                    "mode": deployment.get("mode"),
                    "tenant_id": deployment.get("tenant_id"),
                    "in_flight": loads.get(str(replica.get("id"))),
                }
            )
    return out


def request_usage(admin: AdminApi, call: Call) -> Any:
    request_id = call.params[0]
    missing = NotFound(f"No usage record for request {request_id!r}.", param="request_id")
    event = admin.overview.record(request_id) if admin.overview is not None else None
    if event is None:
        raise missing
    try:
        require_tenant(call.principal, event.tenant_id)
    except NotFound:
        raise missing from None
    row = event.as_row()
    row["created_at"] = event.created_at.isoformat()
    return {"object": "usage_record", **row, "cost": format_micros(event.cost_micros)}


def replica_loads(router: Router) -> Callable[[], dict[str, int]]:
    """Requests in flight on each ready replica, by replica id, as the router counts them."""

    def loads() -> dict[str, int]:
        return {
            endpoint.replica_id: endpoint.in_flight
            for endpoints in router.replicas.values()
            for endpoint in endpoints
        }

    return loads


ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("me",), me),
    ("GET", ("overview",), overview),
    ("GET", ("requests", "*"), request_usage),
]
