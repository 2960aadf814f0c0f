"""Admin routes for evaluations (``tokenmill.evals``).

    GET  /admin/v1/evals                 POST /admin/v1/evals
    GET  /admin/v1/evals/{id}            POST /admin/v1/evals/{id}/cancel

A tenant admin evaluates the models it may use (its own and shared ones) on its own data, as
its own key, billed to its tenant; it sees only its tenant's evaluations (another's is a 404).
Only a platform admin may ``publish`` the results: a published figure shows on the model's
card for every reader. A platform admin sees every tenant's evaluations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenmill.control.keys import Principal, Role
from tokenmill.errors import InvalidRequest, NotFound, PermissionDenied
from tokenmill.evals.objects import parse_request
from tokenmill.evals.service import EvalService

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler

MAX_LIST_LIMIT = 100
EVALUATED_TASKS = frozenset({"chat", "completion"})


def _evals(admin: AdminApi) -> EvalService:
    if admin.evals is None:
        raise NotFound("Evaluations are not enabled on this gateway.", code="not_found")
    return admin.evals


def _scope(principal: Principal) -> str | None:
    """Whose evaluations the caller sees: its tenant's, or (a platform admin) all."""
    return None if principal.role == Role.PLATFORM_ADMIN else principal.tenant_id


def create_eval(admin: AdminApi, call: Call) -> Any:
    evals = _evals(admin)
    request = parse_request(call.body)
    principal = call.principal
    if request.publish and principal.role != Role.PLATFORM_ADMIN:
        raise PermissionDenied("Only a platform admin may publish evaluation results.")
    if admin.resolve_model is not None:
        for model in request.models:  # a model the key may not use is no model (404)
            entry = admin.resolve_model(model, principal)
            if entry.task not in EVALUATED_TASKS:
                raise InvalidRequest(
                    f"The model '{model}' is a {entry.task} model; evaluations score chat and "
                    "completion models.",
                    param="models",
                    code="model_not_supported",
                )
    created = evals.create(principal.tenant_id, principal.key_id, request)
    return created.as_json()


def list_evals(admin: AdminApi, call: Call) -> Any:
    try:
        limit = min(max(int(call.query.get("limit", "20")), 1), MAX_LIST_LIMIT)
    except ValueError:
        limit = 20
    found = _evals(admin).list(_scope(call.principal), limit=limit)
    return {"object": "list", "data": [e.as_json() for e in found]}


def get_eval(admin: AdminApi, call: Call) -> Any:
    return _evals(admin).get(_scope(call.principal), call.params[0]).as_json()


def cancel_eval(admin: AdminApi, call: Call) -> Any:
    return _evals(admin).cancel(_scope(call.principal), call.params[0]).as_json()


def card_evaluations(
    admin: AdminApi, model: str, version: str | None, principal: Principal
) -> list[dict[str, Any]]:
    """What a model card shows ``principal`` of the evaluations of ``model`` (named by its id,
    or as ``id@version``)."""
    if admin.evals is None:
        return []
    names = [model] if version is None else [model, f"{model}@{version}"]
    return admin.evals.card_results(names, _scope(principal))


ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("evals",), list_evals),
    ("POST", ("evals",), create_eval),
    ("GET", ("evals", "*"), get_eval),
    ("POST", ("evals", "*", "cancel"), cancel_eval),
]
