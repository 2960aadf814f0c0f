"""The fine-tuning API family (OpenAI's shapes).

    POST /v1/fine_tuning/jobs                      model, training_file, validation_file,
                                                   suffix, seed, method | hyperparameters,
                                                   metadata
    GET  /v1/fine_tuning/jobs?limit=&after=&metadata[k]=v
    GET  /v1/fine_tuning/jobs/{id}
    POST /v1/fine_tuning/jobs/{id}/cancel | pause | resume
    GET  /v1/fine_tuning/jobs/{id}/events?limit=&after=
    GET  /v1/fine_tuning/jobs/{id}/checkpoints?limit=&after=

A key sees only its tenant's jobs; another tenant's job id is answered as if it did not exist
(404). Creating a job checks the request, the base model and the files, and enqueues its run;
a worker validates the files and trains in the background (``tuning.execution``).
"""

from __future__ import annotations

import asyncio
import re

from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.gateway.http import AUTHORIZATION, HttpRequest, Response, json_response
from tokenmill.gateway.listing import parse_limit
from tokenmill.gateway.services import Services
from tokenmill.knowledge.stores import parse_metadata
from tokenmill.protocol.requests import parse_json_body
from tokenmill.tuning.objects import parse_hyperparameters, parse_seed, parse_suffix
from tokenmill.tuning.repository import DEFAULT_LIST_LIMIT
from tokenmill.tuning.service import FineTuningService

PATH_PARAM = "fine_tuning_path"
CREATE_FIELDS = frozenset(
    {
        "model",
        "training_file",
        "validation_file",
        "suffix",
        "seed",
        "method",
        "hyperparameters",
        "metadata",
        "integrations",
    }
)
ACTIONS = ("cancel", "pause", "resume")
METADATA_QUERY = re.compile(r"metadata\[(.+)\]")


async def _caller(services: Services, request: HttpRequest) -> tuple[Principal, FineTuningService]:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.fine_tuning is None:
        raise NotFound("Fine-tuning is not enabled on this gateway.", code="not_found")
    return principal, services.fine_tuning


def _required(body: dict[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    return value


async def create_job(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    body = parse_json_body(await request.body())
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown parameter: {unknown[0]}.", param=unknown[0])
    if body.get("integrations"):
        raise InvalidRequest(
            "Integrations (Weights and Biases) are not offered here.", param="integrations"
        )
    model = _required(body, "model")
    training_file = _required(body, "training_file")
    validation_file = body.get("validation_file") or None
    if validation_file is not None and not isinstance(validation_file, str):
        raise InvalidRequest("'validation_file' must be a file id.", param="validation_file")
    hyperparameters = parse_hyperparameters(body)
    suffix = parse_suffix(body.get("suffix"))
    seed = parse_seed(body.get("seed"))
    metadata = parse_metadata(body.get("metadata"))
    job = await asyncio.to_thread(
        lambda: service.create(
            principal,
            model=model,
            training_file=training_file,
            validation_file=validation_file,
            suffix=suffix,
            seed=seed,
            hyperparameters=hyperparameters,
            metadata=metadata,
        )
    )
    return json_response(job.as_openai())


async def list_jobs(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    query = request.query()
    limit = parse_limit(query, DEFAULT_LIST_LIMIT)
    metadata = {
        found.group(1): value
        for name, value in query.items()
        if (found := METADATA_QUERY.fullmatch(name)) is not None
    }
    page = await asyncio.to_thread(
        lambda: service.list(
            principal.tenant_id, limit=limit, after=query.get("after") or None, metadata=metadata
        )
    )
    return json_response(page.as_openai())


def _split(request: HttpRequest) -> tuple[str, str]:
    job_id, _, rest = request.path_params[PATH_PARAM].partition("/")
    if not job_id or "/" in rest:
        raise NotFound(f"No route {request.method} {request.path}.", code="not_found")
    return job_id, rest


async def job_get(services: Services, request: HttpRequest) -> Response:
    """``GET /v1/fine_tuning/jobs/{id}``, ``.../events`` and ``.../checkpoints``."""
    principal, service = await _caller(services, request)
    job_id, rest = _split(request)
    tenant = principal.tenant_id
    query = request.query()
    after = query.get("after") or None
    if rest == "":
        job = await asyncio.to_thread(service.get, tenant, job_id)
        return json_response(job.as_openai())
    if rest == "events":
        limit = parse_limit(query, 20)
        events = await asyncio.to_thread(
            lambda: service.events(tenant, job_id, limit=limit, after=after)
        )
        return json_response(events)
    if rest == "checkpoints":
        limit = parse_limit(query, 10)
        page = await asyncio.to_thread(
            lambda: service.checkpoints(tenant, job_id, limit=limit, after=after)
        )
        return json_response(page.as_openai())
    raise NotFound(f"No route GET {request.path}.", code="not_found")


async def job_post(services: Services, request: HttpRequest) -> Response:
    """``POST /v1/fine_tuning/jobs/{id}/cancel``, ``/pause`` and ``/resume``."""
    principal, service = await _caller(services, request)
    job_id, action = _split(request)
    if action not in ACTIONS:
        raise NotFound(f"No route POST {request.path}.", code="not_found")
    act = {"cancel": service.cancel, "pause": service.pause, "resume": service.resume}[action]
    job = await asyncio.to_thread(act, principal.tenant_id, job_id)
    return json_response(job.as_openai())


async def delete_model(services: Services, request: HttpRequest) -> Response:
    """``DELETE /v1/models/{model}``: a tenant's fine-tune, as OpenAI deletes them."""
    principal, service = await _caller(services, request)
    name = request.path_params["model"]
    return json_response(await asyncio.to_thread(service.delete_model, principal, name))
