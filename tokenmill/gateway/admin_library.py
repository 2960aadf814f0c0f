"""Admin routes for the model library and the fleet: models, versions, aliases, deployments.

    GET  /admin/v1/models                   POST /admin/v1/models            {path, id, owner}
    GET  /admin/v1/models/{id}              PATCH /admin/v1/models/{id}      {published, ...}
    POST /admin/v1/models/{id}/versions     {path, version}
    POST /admin/v1/models/{ft id}/merge     a fine-tune merged into a standalone F16 model
    GET  /admin/v1/aliases                  POST /admin/v1/aliases           {name, model, version}
    GET  /admin/v1/deployments              POST /admin/v1/deployments
    GET  /admin/v1/deployments/{id}         PATCH /admin/v1/deployments/{id}
    POST /admin/v1/deployments/{id}/stop

A tenant admin sees public and published models and its own tenant's, may add private models,
publish nothing, alias only its own models, and sees only its own dedicated deployments.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenmill.catalog.add import add_model
from tokenmill.catalog.card import ADAPTER_ENGINE, ModelCard
from tokenmill.catalog.repository import ModelInfo
from tokenmill.control.access import require_platform_admin
from tokenmill.control.keys import Principal, Role
from tokenmill.errors import InvalidRequest, ModelNotFound, NotFound, PermissionDenied
from tokenmill.fleet.deployments import DeploymentInfo
from tokenmill.gateway.admin_evals import card_evaluations
from tokenmill.tuning.standalone import merge_fine_tune

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call


def _platform(principal: Principal) -> bool:
    return principal.role == Role.PLATFORM_ADMIN


def _sees(principal: Principal, model: ModelInfo) -> bool:
    return (
        model.owner_tenant_id is None
        or model.published
        or _platform(principal)
        or model.owner_tenant_id == principal.tenant_id
    )


def _model_json(api: AdminApi, model: ModelInfo, principal: Principal) -> dict[str, Any]:
    default = model.version()
    return {
        "object": "model",
        "id": model.id,
        "task": model.task,
        "engine": model.engine,
        "owner": model.owner_tenant_id,
        "published": model.published,
        "default_version": model.default_version,
        "context_tokens": model.context_tokens,
        "card": model.card_of(default).as_json(),
        "versions": [v.as_json() for v in model.versions],
        "aliases": [
            a.as_json()
            for a in api.models.aliases()
            if a.model_id == model.id
            and (
                a.owner_tenant_id is None
                or _platform(principal)
                or a.owner_tenant_id == principal.tenant_id
            )
        ],
    }


def _visible_model(api: AdminApi, call: Call, model_id: str) -> ModelInfo:
    model = api.models.get(model_id)
    if model is None or not _sees(call.principal, model):
        raise ModelNotFound(f"No model named '{model_id}'.", param="model")
    return model


def _owned_model(api: AdminApi, call: Call, model_id: str) -> ModelInfo:
    model = _visible_model(api, call, model_id)
    if not _platform(call.principal) and model.owner_tenant_id != call.principal.tenant_id:
        raise ModelNotFound(f"No model named '{model_id}' of yours.", param="model")
    return model


def list_models(api: AdminApi, call: Call) -> Any:
    data = [
        _model_json(api, m, call.principal) for m in api.models.list() if _sees(call.principal, m)
    ]
    return {"object": "list", "data": data}


def get_model(api: AdminApi, call: Call) -> Any:
    """The model with its card, and on the card the latest evaluations the caller may see."""
    model = _visible_model(api, call, call.params[0])
    body = _model_json(api, model, call.principal)
    default = model.default_version
    body["card"]["evaluations"] = card_evaluations(api, model.id, default, call.principal)
    return body


def _owner(call: Call) -> str | None:
    if not _platform(call.principal):
        return call.principal.tenant_id
    owner = call.body.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise InvalidRequest("owner is a tenant id or null.", param="owner")
    return owner


def _path(api: AdminApi, call: Call) -> Path:
    """A platform admin's path as it is; a tenant admin's only inside its own directory
    (relative to it, or absolute into it), checked before the file is looked at, so the
    answer says nothing of files elsewhere."""
    raw = call.body.get("path")
    if not isinstance(raw, str) or not raw or "\x00" in raw:
        raise InvalidRequest(
            "path names a GGUF file or model directory on the server.", param="path"
        )
    try:
        given = Path(raw).expanduser()
    except RuntimeError:  # "~name/..." of a user this machine does not have
        given = None
    if _platform(call.principal):
        if given is None:
            raise InvalidRequest(f"No home directory for {raw.split('/')[0]!r}.", param="path")
        return given
    if api.tenant_models_dir is None:
        raise PermissionDenied("Only a platform admin adds models on this gateway.")
    own = (api.tenant_models_dir / call.principal.tenant_id).resolve()
    path = (own / given).resolve() if given is not None else None
    if path is None or not path.is_relative_to(own):  # the same answer: no hint of users
        raise PermissionDenied(
            f"A tenant admin adds models from its own directory on the server, {own}; "
            "ask the operator to put the file there.",
            param="path",
        )
    return path


def create_model(api: AdminApi, call: Call) -> Any:
    model_id = call.body.get("id")
    if model_id is not None and not isinstance(model_id, str):
        raise InvalidRequest("id is a string.", param="id")
    model = add_model(
        api.models,
        _path(api, call),
        model_id=model_id,
        version=call.body.get("version"),
        owner_tenant_id=_owner(call),
    )
    return _model_json(api, model, call.principal)


def add_version(api: AdminApi, call: Call) -> Any:
    model = _owned_model(api, call, call.params[0])
    added = add_model(
        api.models,
        _path(api, call),
        model_id=model.id,
        version=call.body.get("version"),
        owner_tenant_id=model.owner_tenant_id,
    )
    return _model_json(api, added, call.principal)


def update_model(api: AdminApi, call: Call) -> Any:
    model = _owned_model(api, call, call.params[0])
    body = call.body
    published = body.get("published")
    if published is not None:
        require_platform_admin(call.principal)
        if not isinstance(published, bool):
            raise InvalidRequest("published is true or false.", param="published")
    default_version = body.get("default_version")
    if default_version is not None and not isinstance(default_version, str):
        raise InvalidRequest("default_version is a version name.", param="default_version")
    card = None
    if isinstance(body.get("card"), dict):
        card = ModelCard.from_json({**model.card.as_json(), **body["card"]})
    updated = api.models.update(
        model.id, card=card, published=published, default_version=default_version
    )
    return _model_json(api, updated, call.principal)


def merge_model(api: AdminApi, call: Call) -> Any:
    """The owning tenant's fine-tune (or any, for a platform admin) merged into its base:
    a private model of its own, deployable like any other (``tuning.standalone``)."""
    if api.tenant_models_dir is None:
        raise PermissionDenied("This gateway has no directory for tenants' models.")
    merged = merge_fine_tune(
        api.models,
        api.prices,
        call.params[0],
        tenant_id=None if _platform(call.principal) else call.principal.tenant_id,
        models_dir=api.tenant_models_dir,
        now=datetime.now(UTC),
    )
    return _model_json(api, merged, call.principal)


def list_aliases(api: AdminApi, call: Call) -> Any:
    principal = call.principal
    data = [
        a.as_json()
        for a in api.models.aliases()
        if a.owner_tenant_id is None
        or _platform(principal)
        or a.owner_tenant_id == principal.tenant_id
    ]
    return {"object": "list", "data": data}


def set_alias(api: AdminApi, call: Call) -> Any:
    body = call.body
    name, model_id, version = body.get("name"), body.get("model"), body.get("version")
    if not all(isinstance(v, str) for v in (name, model_id, version)):
        raise InvalidRequest("An alias needs name, model and version.", param="name")
    assert isinstance(name, str) and isinstance(model_id, str) and isinstance(version, str)
    if _platform(call.principal):
        _visible_model(api, call, model_id)
        owner = None
    else:
        _owned_model(api, call, model_id)
        owner = call.principal.tenant_id
    return api.models.set_alias(name, model_id, version, owner).as_json()


def _deployment_json(api: AdminApi, info: DeploymentInfo) -> dict[str, Any]:
    live = {d["id"]: d for d in (api.fleet_status() if api.fleet_status else [])}
    found = live.get(info.id)
    extra: dict[str, Any] = {
        "replicas": [],
        "scaling_reason": None,
        "target_replicas": None,
        "last_error": None,
        "health": info.as_json()["health"],
        "health_reason": info.failing_reason,
    }
    if found is not None:
        extra = {k: found.get(k) for k in extra}
    return {**info.as_json(), **extra}


def _visible_deployment(api: AdminApi, call: Call) -> DeploymentInfo:
    info = api.deployments.get(call.params[0])
    principal = call.principal
    if info is None or not (_platform(principal) or info.tenant_id == principal.tenant_id):
        raise NotFound(f"No deployment '{call.params[0]}'.", code="deployment_not_found")
    return info


def list_deployments(api: AdminApi, call: Call) -> Any:
    principal = call.principal
    data = [
        _deployment_json(api, d)
        for d in api.deployments.list()
        if _platform(principal) or d.tenant_id == principal.tenant_id
    ]
    return {"object": "list", "data": data}


def get_deployment(api: AdminApi, call: Call) -> Any:
    return _deployment_json(api, _visible_deployment(api, call))


def _int(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidRequest(f"{name} is an integer.", param=name)
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise InvalidRequest(f"{name} is an object.", param=name)
    return value


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} is a string.", param=name)
    return value


def create_deployment(api: AdminApi, call: Call) -> Any:
    require_platform_admin(call.principal)
    body = call.body
    model_id = body.get("model")
    if not isinstance(model_id, str):
        raise InvalidRequest("model names a model in the library.", param="model")
    model = _visible_model(api, call, model_id)
    if model.engine == ADAPTER_ENGINE:
        raise InvalidRequest(
            f"{model.id} is a fine-tune: its base model's deployments serve it.", param="model"
        )
    version = body.get("version") or model.default_version
    if model.version(version) is None:
        raise InvalidRequest(f"{model.id} has no version '{version}'.", param="version")
    info = api.deployments.create(
        model.id,
        str(version),
        mode=str(body.get("mode", "serverless")),
        tenant_id=_text(body, "tenant_id"),
        engine=str(body.get("engine") or model.engine),
        settings=_object(body, "settings") or {},
        min_replicas=_int(body, "min_replicas", 0) or 0,
        max_replicas=_int(body, "max_replicas", 1) or 1,
        idle_seconds=_int(body, "idle_seconds", 300) or 300,
        scaling=_object(body, "scaling"),
        constraints=_object(body, "constraints"),
    )
    return _deployment_json(api, info)


INT_FIELDS = ("min_replicas", "max_replicas", "idle_seconds")
OBJECT_FIELDS = ("settings", "scaling", "constraints")


def update_deployment(api: AdminApi, call: Call) -> Any:
    require_platform_admin(call.principal)
    info = _visible_deployment(api, call)
    changes: dict[str, Any] = {
        **{k: _int(call.body, k, None) for k in INT_FIELDS if k in call.body},
        **{k: _object(call.body, k) for k in OBJECT_FIELDS if k in call.body},
    }
    if call.body.get("status") in ("active", "stopped"):
        changes["status"] = call.body["status"]
    return _deployment_json(api, api.deployments.update(info.id, **changes))


def stop_deployment(api: AdminApi, call: Call) -> Any:
    require_platform_admin(call.principal)
    info = _visible_deployment(api, call)
    return _deployment_json(api, api.deployments.update(info.id, status="stopped"))


ROUTES: list[tuple[str, tuple[str, ...], Any]] = [
    ("GET", ("models",), list_models),
    ("POST", ("models",), create_model),
    ("GET", ("models", "*"), get_model),
    ("PATCH", ("models", "*"), update_model),
    ("POST", ("models", "*", "versions"), add_version),
    ("POST", ("models", "*", "merge"), merge_model),
    ("GET", ("aliases",), list_aliases),
    ("POST", ("aliases",), set_alias),
    ("GET", ("deployments",), list_deployments),
    ("POST", ("deployments",), create_deployment),
    ("GET", ("deployments", "*"), get_deployment),
    ("PATCH", ("deployments", "*"), update_deployment),
    ("POST", ("deployments", "*", "stop"), stop_deployment),
]
