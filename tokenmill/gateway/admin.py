"""The admin REST API under ``/admin/v1``: tenants, keys, prices, credits, usage, statements.

Every route authenticates the key, then ``tokenmill.control.access`` decides what it may
see; the work (database reads and writes) runs in a thread, off the event loop. Errors are
``tokenmill.errors`` values, mapped to OpenAI's error shape by the app like everywhere else.

    GET  /admin/v1/tenants                      POST /admin/v1/tenants
    GET  /admin/v1/tenants/{id}                 PATCH /admin/v1/tenants/{id}
    GET  /admin/v1/tenants/{id}/keys            POST /admin/v1/tenants/{id}/keys
    GET  /admin/v1/keys/{id}                    PATCH /admin/v1/keys/{id}
    POST /admin/v1/keys/{id}/revoke
    GET  /admin/v1/prices                       POST /admin/v1/prices
    GET  /admin/v1/tenants/{id}/credits         POST /admin/v1/tenants/{id}/credits
    GET  /admin/v1/tenants/{id}/usage?group_by=model|key|day|service_tier|app&since=&until=
    GET  /admin/v1/tenants/{id}/service_levels?since=&until=   GET /admin/v1/service_levels
    GET  /admin/v1/tenants/{id}/statements/{YYYY-MM}[.csv]
    ... and the routes of admin_library (models, fleet), admin_console, admin_mcp,
    admin_advice, admin_datasets, admin_evals and admin_audit (every POST, PATCH and DELETE
    is written to the audit log)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tokenmill.advice.advisor import Advisor
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.overview import UsageOverview
from tokenmill.billing.pricebook import PRICE_FIELDS, PriceBookRepository
from tokenmill.billing.pricing import Price, format_micros
from tokenmill.billing.statements import Reports
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.control.access import (
    require_admin,
    require_grantable,
    require_platform_admin,
    require_tenant,
)
from tokenmill.control.audit import AuditLog
from tokenmill.control.keys import KEY_TERMS, KeyInfo, KeyRepository, Principal, Role
from tokenmill.control.tenants import TenantInfo, TenantRepository
from tokenmill.datasets.service import DatasetService
from tokenmill.errors import InvalidRequest, NotFound, TokenmillError
from tokenmill.evals.service import EvalService
from tokenmill.files.repository import FileRepository
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.gateway import (
    admin_advice,
    admin_audit,
    admin_console,
    admin_datasets,
    admin_evals,
    admin_library,
    admin_mcp,
)
from tokenmill.gateway.http import HttpRequest, Response, json_response
from tokenmill.gateway.listing import parse_limit
from tokenmill.plugins.service import McpService
from tokenmill.protocol.requests import parse_json_body
from tokenmill.protocol.tiers import DEFAULT_TTFT_TARGETS, TIER_TERMS
from tokenmill.store.db import Database

PREFIX = "/admin/v1/"
CSV = b"text/csv; charset=utf-8"
MAX_CREDIT_ENTRIES = 1000
MAX_MICROS = 2**62  # what a database's 64-bit integer holds, with room to add


@dataclass(frozen=True, slots=True)
class Call:
    principal: Principal
    params: tuple[str, ...]
    query: dict[str, str]
    body: dict[str, Any]


@dataclass(slots=True)
class AdminApi:
    tenants: TenantRepository
    keys: KeyRepository
    prices: PriceBookRepository
    ledger: LedgerRepository
    reports: Reports
    invalidate_key: Callable[[str], None]
    models: ModelRepository
    deployments: DeploymentRepository
    # The fleet controller's live view (deployments with their replicas), when this
    # gateway runs the fleet.
    fleet_status: Callable[[], list[dict[str, Any]]] | None = None
    overview: UsageOverview | None = None  # the console's live traffic (admin_console)
    replica_load: Callable[[], dict[str, int]] | None = None  # requests in flight by replica
    files: FileRepository | None = None  # what each tenant stores (the Files API)
    mcp: McpService | None = None  # tenants' MCP servers (admin_mcp)
    advisor: Advisor | None = None  # serverless or dedicated (admin_advice)
    audit: AuditLog | None = None  # every admin action, hash-chained (admin_audit)
    datasets: DatasetService | None = None  # the dataset library (admin_datasets)
    evals: EvalService | None = None  # evaluations (admin_evals)
    # A model name as a key sees it (the gateway's directory): 404 for one it may not use.
    resolve_model: Callable[[str, Principal], Any] | None = None
    ttft_targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TTFT_TARGETS))
    # A tenant admin adds models only from files under <this>/<its tenant id> (admin_library).
    tenant_models_dir: Path | None = None

    @classmethod
    def build(
        cls,
        db: Database,
        clock: Clock,
        invalidate_key: Callable[[str], None],
        ttft_targets: dict[str, float] | None = None,
    ) -> AdminApi:
        return cls(
            TenantRepository(db, clock),
            KeyRepository(db, clock),
            PriceBookRepository(db, clock),
            LedgerRepository(db, clock),
            Reports(db),
            invalidate_key,
            ModelRepository(db, clock),
            DeploymentRepository(db, clock),
            overview=UsageOverview(db, clock),
            files=FileRepository(db, clock),
            advisor=Advisor(db, PriceBookRepository(db, clock), clock),
            audit=AuditLog(db, clock),
            ttft_targets=ttft_targets or dict(DEFAULT_TTFT_TARGETS),
        )

    # tenants

    def list_tenants(self, call: Call) -> Any:
        if call.principal.role == Role.PLATFORM_ADMIN:
            found = self.tenants.list()
        else:
            found = [self._tenant(call, call.principal.tenant_id)]
        return {"object": "list", "data": [t.as_json() for t in found]}

    def create_tenant(self, call: Call) -> Any:
        require_platform_admin(call.principal)
        created = self.tenants.create(_str(call.body, "name"))
        terms = {k: v for k, v in call.body.items() if k != "name"}
        return (self.tenants.update_terms(created.id, terms) if terms else created).as_json()

    def get_tenant(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0]).as_json()
        if self.files is not None:
            tenant["storage_bytes"] = self.files.stored_bytes(call.params[0])
        return tenant

    def update_tenant(self, call: Call) -> Any:
        require_platform_admin(call.principal)  # a tenant does not raise its own limits
        return self.tenants.update_terms(call.params[0], call.body).as_json()

    def _tenant(self, call: Call, tenant_id: str) -> TenantInfo:
        require_tenant(call.principal, tenant_id)
        found = self.tenants.get(tenant_id)
        if found is None:
            raise NotFound(f"No tenant with id {tenant_id!r}.", param="tenant_id")
        return found

    # keys

    def list_keys(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        return {"object": "list", "data": [k.as_json() for k in self.keys.list(tenant.id)]}

    def create_key(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        body = call.body
        try:
            role = Role(body.get("role", Role.INFERENCE.value))
        except ValueError:
            raise InvalidRequest("role is one of " + ", ".join(Role), param="role") from None
        require_grantable(call.principal, role)
        expires_at = body.get("expires_at")
        info, secret = self.keys.create(
            tenant.id,
            _str(body, "name"),
            role=role,
            allowed_models=body.get("allowed_models"),
            expires_at=_when(expires_at, "expires_at") if expires_at else None,
            terms={k: body[k] for k in (*KEY_TERMS, *TIER_TERMS) if k in body},
        )
        return {**info.as_json(), "secret": secret}

    def get_key(self, call: Call) -> Any:
        return self._key(call).as_json()

    def update_key(self, call: Call) -> Any:
        key = self._key(call)
        updated = self.keys.update_terms(key.id, call.body)
        self.invalidate_key(key.id)
        return updated.as_json()

    def revoke_key(self, call: Call) -> Any:
        key = self._key(call)
        revoked = self.keys.revoke(key.id)
        self.invalidate_key(key.id)
        return revoked.as_json()

    def _key(self, call: Call) -> KeyInfo:
        key_id = call.params[0]
        key = self.keys.get(key_id)
        missing = NotFound(f"No API key with id {key_id!r}.", param="key_id")
        if key is None:
            raise missing
        try:
            require_tenant(call.principal, key.tenant_id)
        except NotFound:
            raise missing from None
        return key

    # prices, credits, usage, statements

    def list_prices(self, call: Call) -> Any:
        model = call.query.get("model")
        return {"object": "list", "data": [v.as_json() for v in self.prices.list(model)]}

    def create_price(self, call: Call) -> Any:
        require_platform_admin(call.principal)
        body = call.body
        try:
            price = Price(**{name: body.get(name, 0) for name in PRICE_FIELDS})
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        effective_at = body.get("effective_at")
        when = _when(effective_at, "effective_at") if effective_at else None
        tier = body.get("service_tier") or "default"
        return self.prices.add(_str(body, "model"), price, when, tier).as_json()

    def get_credits(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        balance = self.ledger.balance(tenant.id)
        limit = parse_limit(call.query, 100)
        if not 1 <= limit <= MAX_CREDIT_ENTRIES:
            raise InvalidRequest(f"limit is 1 to {MAX_CREDIT_ENTRIES}.", param="limit")
        entries = self.ledger.entries(tenant.id, limit=limit)
        return {
            "object": "credits",
            "tenant_id": tenant.id,
            "balance_micros": balance,
            "balance": format_micros(balance),
            "entries": [e.as_json() for e in entries],
        }

    def add_credits(self, call: Call) -> Any:
        require_platform_admin(call.principal)
        tenant = self._tenant(call, call.params[0])
        body = call.body
        amount = body.get("amount_micros")
        if not isinstance(amount, int) or isinstance(amount, bool) or abs(amount) > MAX_MICROS:
            raise InvalidRequest(
                "amount_micros is an integer of at most 2**62.", param="amount_micros"
            )
        key, note = _optional_str(body, "idempotency_key"), _optional_str(body, "note")
        kind = body.get("kind", "topup")
        if kind not in ("topup", "adjustment"):
            raise InvalidRequest("kind is topup or adjustment.", param="kind")
        if kind == "adjustment":
            entry = self.ledger.adjust(tenant.id, amount, note=note or "", idempotency_key=key)
        else:
            entry = self.ledger.top_up(tenant.id, amount, idempotency_key=key, note=note)
        return entry.as_json()

    def usage(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        query = call.query
        rows = self.reports.usage(
            tenant.id,
            query.get("group_by", "model"),
            _when(query["since"], "since") if "since" in query else None,
            _when(query["until"], "until") if "until" in query else None,
        )
        return {"object": "list", "data": [row.as_json() for row in rows]}

    def tenant_levels(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        return self._levels(call, tenant.id)

    def platform_levels(self, call: Call) -> Any:
        require_platform_admin(call.principal)
        return self._levels(call, None)

    def _levels(self, call: Call, tenant_id: str | None) -> Any:
        """The window is ``since`` to ``until`` (default: the last 24 hours)."""
        query = call.query
        since = (
            _when(query["since"], "since")
            if "since" in query
            else datetime.now(UTC) - timedelta(days=1)
        )
        until = _when(query["until"], "until") if "until" in query else None
        rows = self.reports.service_levels(self.ttft_targets, tenant_id, since, until)
        return {"object": "list", "since": since.isoformat(), "data": [r.as_json() for r in rows]}

    def statement(self, call: Call) -> Any:
        tenant = self._tenant(call, call.params[0])
        month = call.params[1]
        as_csv = month.endswith(".csv")
        statement = self.reports.statement(tenant.id, month.removesuffix(".csv"))
        if as_csv:
            return Response(statement.as_csv().encode(), media_type=CSV)
        return statement.as_json()


Handler = Callable[[AdminApi, Call], Any]

ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("tenants",), AdminApi.list_tenants),
    ("POST", ("tenants",), AdminApi.create_tenant),
    ("GET", ("tenants", "*"), AdminApi.get_tenant),
    ("PATCH", ("tenants", "*"), AdminApi.update_tenant),
    ("GET", ("tenants", "*", "keys"), AdminApi.list_keys),
    ("POST", ("tenants", "*", "keys"), AdminApi.create_key),
    ("GET", ("keys", "*"), AdminApi.get_key),
    ("PATCH", ("keys", "*"), AdminApi.update_key),
    ("POST", ("keys", "*", "revoke"), AdminApi.revoke_key),
    ("GET", ("prices",), AdminApi.list_prices),
    ("POST", ("prices",), AdminApi.create_price),
    ("GET", ("tenants", "*", "credits"), AdminApi.get_credits),
    ("POST", ("tenants", "*", "credits"), AdminApi.add_credits),
    ("GET", ("tenants", "*", "usage"), AdminApi.usage),
    ("GET", ("tenants", "*", "statements", "*"), AdminApi.statement),
    ("GET", ("tenants", "*", "service_levels"), AdminApi.tenant_levels),
    ("GET", ("service_levels",), AdminApi.platform_levels),
]
ROUTES += admin_library.ROUTES
ROUTES += admin_console.ROUTES
ROUTES += admin_mcp.ROUTES
ROUTES += admin_advice.ROUTES
ROUTES += admin_datasets.ROUTES
ROUTES += admin_evals.ROUTES
ROUTES += admin_audit.ROUTES


def match(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    parts = tuple(path.strip("/").split("/"))
    for route_method, pattern, handler in ROUTES:
        if route_method != method or len(pattern) != len(parts):
            continue
        if all(p == "*" or p == part for p, part in zip(pattern, parts, strict=True)):
            return handler, tuple(part for p, part in zip(pattern, parts, strict=True) if p == "*")
    raise NotFound(f"No route {method} {PREFIX}{path}.", code="not_found")


async def handle(admin: AdminApi, principal: Principal, request: HttpRequest) -> Response:
    require_admin(principal)
    handler, params = match(request.method, request.path_params["admin_path"])
    body: dict[str, Any] = {}
    query = dict(parse_qsl(request.scope.get("query_string", b"").decode("latin-1")))
    if request.method in ("POST", "PATCH"):
        raw = await request.body()
        try:
            body = parse_json_body(raw) if raw.strip() else {}
        except TokenmillError as exc:  # a refused action too
            await admin_audit.record(
                admin, request, Call(principal, params, query, {}), exc.status, None, None
            )
            raise
    call = Call(principal, params, query, body)

    async def run(handler: Handler, call: Call) -> Any:
        result = await asyncio.to_thread(handler, admin, call)
        if inspect.isawaitable(result):  # work that talks to the network: done on the loop
            result = await result
        return result

    if request.method == "GET" or admin.audit is None:
        result = await run(handler, call)
    else:
        result = await admin_audit.audited(admin, request, handler, call, run)
    return result if isinstance(result, Response) else json_response(result)


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} is a string.", param=name)
    return value


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} is a string.", param=name)
    return value


def _when(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(f"{name} is an ISO 8601 time.", param=name) from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{name} must carry a time zone.", param=name)
    return moment
