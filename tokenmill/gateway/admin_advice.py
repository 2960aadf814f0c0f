"""Admin routes of the cost advisor (``tokenmill.advice``).

    GET /admin/v1/tenants/{id}/advice?model=&cost_model=&since=&until=&days=&scaling=
    GET /admin/v1/advice?since=&until=&days=     (platform admin: every tenant, and the fleet)

A tenant admin sees its own tenant's advice; a platform admin any tenant's, and the
fleet-wide summary: which tenants would pay less on dedicated accelerators, and how busy
those accelerators would be. Without ``model``, every model the tenant used is advised on
(those with no known cost model are listed as skipped, with the reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tokenmill.advice.advisor import Advice, Advisor
from tokenmill.advice.breakeven import SCALINGS
from tokenmill.control.access import require_platform_admin, require_tenant
from tokenmill.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler

MAX_WINDOW_DAYS = 366


def _window(advisor: Advisor, query: dict[str, str]) -> tuple[datetime, datetime]:
    from tokenmill.gateway.admin import _when

    days = None
    if "days" in query:
        try:
            days = float(query["days"])
        except ValueError:
            days = -1.0
        if not 0 < days <= MAX_WINDOW_DAYS:
            raise InvalidRequest(f"days is a number in (0, {MAX_WINDOW_DAYS}].", param="days")
    since = _when(query["since"], "since") if "since" in query else None
    until = _when(query["until"], "until") if "until" in query else None
    start, end = advisor.window(since, until, days)
    if (end - start).days > MAX_WINDOW_DAYS:
        raise InvalidRequest(f"The window is at most {MAX_WINDOW_DAYS} days.", param="since")
    return start, end


def _advisor(admin: AdminApi) -> Advisor:
    if admin.advisor is None:
        raise NotFound("The cost advisor is not enabled on this gateway.", code="not_found")
    return admin.advisor


def tenant_advice(admin: AdminApi, call: Call) -> Any:
    require_tenant(call.principal, call.params[0])
    tenant = admin.tenants.get(call.params[0])
    if tenant is None:
        raise NotFound(f"No tenant with id {call.params[0]!r}.", param="tenant_id")
    advisor = _advisor(admin)
    start, end = _window(advisor, call.query)
    cost_model = call.query.get("cost_model")
    scaling = call.query.get("scaling", "arrivals")
    if scaling not in SCALINGS:
        raise InvalidRequest(f"scaling is one of {', '.join(SCALINGS)}.", param="scaling")
    if "model" in call.query:
        model = call.query["model"]
        return advisor.advise(tenant.id, model, start, end, cost_model, scaling=scaling).as_json()
    found, skipped = _every_model(advisor, tenant.id, start, end, cost_model, scaling)
    return {
        "object": "list",
        "data": [a.as_json() for a in found],
        "skipped": skipped,
    }


def _every_model(
    advisor: Advisor,
    tenant_id: str,
    start: datetime,
    end: datetime,
    cost_model: str | None,
    scaling: str = "arrivals",
) -> tuple[list[Advice], list[dict[str, str]]]:
    found: list[Advice] = []
    skipped: list[dict[str, str]] = []
    for model in advisor.models(tenant_id, start, end):
        try:
            found.append(advisor.advise(tenant_id, model, start, end, cost_model, scaling=scaling))
        except InvalidRequest as exc:
            skipped.append({"tenant_id": tenant_id, "model": model, "reason": exc.message})
    return found, skipped


def fleet_advice(admin: AdminApi, call: Call) -> Any:
    """Every tenant's advice in a line each, and what moving the cheaper ones would do."""
    require_platform_admin(call.principal)
    advisor = _advisor(admin)
    start, end = _window(advisor, call.query)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for tenant in admin.tenants.list():
        found, missed = _every_model(advisor, tenant.id, start, end, call.query.get("cost_model"))
        skipped += missed
        rows += [_line(tenant.name, advice) for advice in found]
    moving = [r for r in rows if r["recommendation"] != "serverless"]
    accelerators = sum(r["always_on_accelerators"] or 0 for r in moving)
    busy = sum((r["utilisation"] or 0.0) * (r["always_on_accelerators"] or 0) for r in moving)
    return {
        "object": "advice.summary",
        "window": {"since": start.isoformat(), "until": end.isoformat()},
        "data": rows,
        "skipped": skipped,
        "dedicated": {
            "tenants": sorted({r["tenant_id"] for r in moving}),
            "accelerators": accelerators,
            "utilisation": round(busy / accelerators, 4) if accelerators else None,
            "serverless_monthly_micros_moved": sum(r["serverless_monthly_micros"] for r in moving),
            # the shared replicas would lose this share of the tokens they serve
            "shared_tokens_share_moved": _share(
                sum(r["tokens_per_day"] for r in moving), sum(r["tokens_per_day"] for r in rows)
            ),
        },
    }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _line(tenant_name: str, advice: Advice) -> dict[str, Any]:
    full = advice.as_json()
    at_volume = next((p for p in full["curve"] if p["factor"] == 1.0), None)
    return {
        "tenant_id": advice.tenant_id,
        "tenant_name": tenant_name,
        "model": full["model"],
        "recommendation": full["recommendation"],
        "requests_per_day": full["traffic"]["requests_per_day"],
        "tokens_per_day": full["traffic"]["tokens_per_day"],
        "serverless_monthly_micros": at_volume and at_volume["serverless_monthly_micros"],
        "dedicated_monthly_micros": at_volume and at_volume["dedicated_monthly_micros"],
        "always_on_accelerators": advice.always_on,
        "utilisation": full["dedicated"]["always_on_utilisation"],
        "break_even_requests_per_day": full["break_even"]["requests_per_day"],
    }


ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("tenants", "*", "advice"), tenant_advice),
    ("GET", ("advice",), fleet_advice),
]
