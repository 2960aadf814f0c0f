"""Admin routes of the dataset library (``tokenmill.datasets``).

    GET    /admin/v1/datasets                         POST (from a file: file_id, model, ...)
    GET    /admin/v1/datasets/{id}                    DELETE (every version)
    GET    /admin/v1/datasets/{id}/versions/{n}       DELETE (one version): the card
    GET    /admin/v1/datasets/{id}/versions/{n}/rows?split=train|validation&offset=&limit=
    POST   /admin/v1/datasets/{id}/versions/{n}/publish   (platform admin)

A tenant admin sees its own tenant's datasets and the published versions of others; any
other dataset is answered as if it did not exist (404). It deletes its own unpublished
versions; only a platform admin publishes, and deletes a published version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenmill.control.access import require_platform_admin
from tokenmill.control.keys import Role
from tokenmill.datasets.content import DEFAULT_VALIDATION_FRACTION, SplitPlan
from tokenmill.datasets.objects import (
    DEFAULT_PAGE_ROWS,
    MAX_LICENCE_CHARS,
    MAX_SOURCE_CHARS,
    check_name,
    check_split,
    no_such_version,
    optional_text,
)
from tokenmill.datasets.service import DatasetService, Provenance
from tokenmill.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler


def _datasets(admin: AdminApi) -> DatasetService:
    if admin.datasets is None:
        raise NotFound("The dataset library is not enabled on this gateway.", code="not_found")
    return admin.datasets


def _reader(call: Call) -> str | None:
    """Whose datasets the caller sees: None for a platform admin (all of them)."""
    return None if call.principal.role == Role.PLATFORM_ADMIN else call.principal.tenant_id


def _number(call: Call) -> int:
    raw = call.params[1]
    if not raw.isdigit() or len(raw) > 9:
        raise no_such_version(call.params[0], raw)
    return int(raw)


def _int(raw: object, param: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.removeprefix("-").isdigit() and len(raw) < 12:
        return int(raw)
    raise InvalidRequest(f"{param} is an integer.", param=param)


def _fraction(raw: object) -> float:
    if raw is None:
        return DEFAULT_VALIDATION_FRACTION
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise InvalidRequest(
            "validation_fraction is a number from 0 to below 1.", param="validation_fraction"
        )
    return float(raw)


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} is a non-empty string.", param=name)
    return value


def list_datasets(admin: AdminApi, call: Call) -> Any:
    found = _datasets(admin).list(_reader(call))
    return {"object": "list", "data": [d.as_json() for d in found]}


def create_dataset(admin: AdminApi, call: Call) -> Any:
    body = call.body
    owner = call.principal.tenant_id
    if call.principal.role == Role.PLATFORM_ADMIN and body.get("owner") is not None:
        owner = str(_string(body, "owner"))
    name = body.get("name")
    plan = SplitPlan(
        validation_fraction=_fraction(body.get("validation_fraction")),
        seed=_int(body.get("seed"), "seed", 0),
        validation_file_id=_string(body, "validation_file_id"),
    )
    provenance = Provenance(
        created_by=call.principal.key_id,
        licence=optional_text(body.get("licence"), "licence", MAX_LICENCE_CHARS),
        source=optional_text(body.get("source"), "source", MAX_SOURCE_CHARS),
    )
    added = _datasets(admin).create(
        owner,
        provenance,
        file_id=str(_string(body, "file_id", required=True)),
        model=str(_string(body, "model", required=True)),
        name=None if name is None else check_name(name),
        plan=plan,
    )
    shown = added.dataset.as_json(with_versions=True)
    return {**shown, "created": added.created, "version": added.version.card(added.dataset)}


def get_dataset(admin: AdminApi, call: Call) -> Any:
    return _datasets(admin).get(_reader(call), call.params[0]).as_json(with_versions=True)


def delete_dataset(admin: AdminApi, call: Call) -> Any:
    removed = _datasets(admin).delete(_reader(call), call.params[0])
    return {"object": "dataset.deleted", "id": removed.id, "deleted": True}


def get_version(admin: AdminApi, call: Call) -> Any:
    dataset, version = _datasets(admin).version(_reader(call), call.params[0], _number(call))
    return version.card(dataset)


def version_rows(admin: AdminApi, call: Call) -> Any:
    query = call.query
    return _datasets(admin).page(
        _reader(call),
        call.params[0],
        _number(call),
        check_split(query.get("split", "train")),
        _int(query.get("offset"), "offset", 0),
        _int(query.get("limit"), "limit", DEFAULT_PAGE_ROWS),
    )


def publish_version(admin: AdminApi, call: Call) -> Any:
    require_platform_admin(call.principal)
    dataset, version = _datasets(admin).publish(call.params[0], _number(call))
    return version.card(dataset)


def delete_version(admin: AdminApi, call: Call) -> Any:
    removed = _datasets(admin).delete_version(_reader(call), call.params[0], _number(call))
    return {"object": "dataset.version.deleted", "id": removed.id, "deleted": True}


DATASETS = ("datasets",)
VERSION = ("datasets", "*", "versions", "*")
ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", DATASETS, list_datasets),
    ("POST", DATASETS, create_dataset),
    ("GET", (*DATASETS, "*"), get_dataset),
    ("DELETE", (*DATASETS, "*"), delete_dataset),
    ("GET", VERSION, get_version),
    ("DELETE", VERSION, delete_version),
    ("GET", (*VERSION, "rows"), version_rows),
    ("POST", (*VERSION, "publish"), publish_version),
]
