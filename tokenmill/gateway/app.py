"""The gateway's ASGI application: dispatch, the one error mapping, and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DataError, OperationalError

from tokenmill.console.assets import ConsoleAssets
from tokenmill.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    TokenmillError,
    Unauthorized,
)
from tokenmill.gateway import (
    apps,
    batches,
    embed,
    files,
    fine_tuning,
    openapi,
    responses,
    routes,
    vector_stores,
)
from tokenmill.gateway.http import (
    AUTHORIZATION,
    ClientDisconnected,
    HttpRequest,
    Receive,
    Response,
    Scope,
    Send,
    StreamResponse,
)
from tokenmill.gateway.services import Services

log = logging.getLogger(__name__)

Handler = Callable[[Services, HttpRequest], Awaitable[Response | StreamResponse]]
console = ConsoleAssets().handle  # the web console's files, read once from package data

EXACT: dict[str, dict[str, Handler]] = {
    "/v1/models": {"GET": routes.list_models},
    "/v1/chat/completions": {"POST": routes.chat_completions},
    "/v1/completions": {"POST": routes.completions},
    "/v1/embeddings": {"POST": routes.embeddings},
    "/v1/files": {"GET": files.list_files, "POST": files.create_file},
    "/v1/vector_stores": {"GET": vector_stores.list_stores, "POST": vector_stores.create_store},
    "/v1/batches": {"GET": batches.list_batches, "POST": batches.create_batch},
    "/v1/fine_tuning/jobs": {"GET": fine_tuning.list_jobs, "POST": fine_tuning.create_job},
    "/v1/responses": {"GET": responses.list_responses, "POST": responses.create_response},
    "/v1/apps": {"GET": apps.apps_root, "POST": apps.apps_root},
    "/health": {"GET": routes.health},
    "/metrics": {"GET": routes.metrics},
    "/openapi.json": {"GET": openapi.openapi_json},
    "/console": {"GET": console},
    "/console/": {"GET": console},
}
PREFIXED: list[tuple[str, str, dict[str, Handler]]] = [
    ("/v1/models/", "model", {"GET": routes.get_model, "DELETE": fine_tuning.delete_model}),
    ("/v1/files/", "file_path", {"GET": files.file_resource, "DELETE": files.delete_file}),
    (
        "/v1/vector_stores/",
        vector_stores.PATH_PARAM,
        {
            "GET": vector_stores.store_get,
            "POST": vector_stores.store_post,
            "DELETE": vector_stores.store_delete,
        },
    ),
    (
        "/v1/batches/",
        batches.PATH_PARAM,
        {"GET": batches.batch_get, "POST": batches.batch_post},
    ),
    (
        "/v1/fine_tuning/jobs/",
        fine_tuning.PATH_PARAM,
        {"GET": fine_tuning.job_get, "POST": fine_tuning.job_post},
    ),
    (
        "/v1/responses/",
        responses.PATH_PARAM,
        {"GET": responses.response_get, "DELETE": responses.response_delete},
    ),
    ("/v1/apps/", apps.PATH_PARAM, {"GET": apps.app_resource, "POST": apps.app_resource}),
    ("/apps/", embed.PATH_PARAM, {"GET": embed.embed, "POST": embed.embed}),
    ("/console/", "console_path", {"GET": console}),
    (
        "/admin/v1/",
        "admin_path",
        dict.fromkeys(("GET", "POST", "PATCH", "DELETE"), routes.admin_api),
    ),
]


def error_response(request: HttpRequest, error: TokenmillError) -> Response:
    headers = dict(error.headers)
    if request.request_id:
        headers["x-request-id"] = request.request_id
    return Response(error.body_bytes(), error.status, headers=headers)


def _find(request: HttpRequest) -> Handler:
    methods = EXACT.get(request.path)
    if methods is None:
        for prefix, param, candidates in PREFIXED:
            if request.path.startswith(prefix) and len(request.path) > len(prefix):
                request.path_params[param] = request.path[len(prefix) :]
                methods = candidates
                break
    if methods is None:
        raise NotFound(f"No route {request.method} {request.path}.", code="not_found")
    handler = methods.get(request.method)
    if handler is None:
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}.")
    return handler


AUTHENTICATED = ("/v1/", "/admin/", "/apps/")


def _offered_secret(request: HttpRequest) -> str | None:
    header = request.header(AUTHORIZATION)
    if header is None:
        return None
    scheme, _, secret = header.strip().partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


class GatewayApp:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = HttpRequest(scope, receive)
        try:
            handler = _find(request)
            self._throttle(request)
            await apps.app_scope(self.services, request)
            response = await handler(self.services, request)
        except Unauthorized as error:
            throttle = self.services.auth_throttle
            if throttle is not None:
                throttle.failed(request.client_address, _offered_secret(request))
            self._count_refusal(error)
            response = error_response(request, error)
        except TokenmillError as error:
            response = error_response(request, error)
        except ClientDisconnected:
            return
        except DataError:  # e.g. a NUL character, which PostgreSQL cannot store in text
            log.info("a value the database refused on %s %s", request.method, request.path)
            response = error_response(
                request,
                InvalidRequest(
                    "The request holds a value that cannot be stored (such as a NUL character).",
                    code="invalid_value",
                ),
            )
        except OperationalError:  # the database is unreachable (restarting, say)
            log.warning("the database is unreachable on %s %s", request.method, request.path)
            response = error_response(
                request,
                ServiceUnavailable(
                    "The platform's database is unreachable; try again shortly.",
                    headers={"Retry-After": "2"},
                    code="database_unavailable",
                ),
            )
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response(request, TokenmillError("The server had an error."))
        await response(receive, send)

    def _throttle(self, request: HttpRequest) -> None:
        """429 for an address or key prefix with too many failed authentications, unless the
        key it offers is one the key cache holds as valid."""
        throttle = self.services.auth_throttle
        if throttle is None or not request.path.startswith(AUTHENTICATED):
            return
        secret = _offered_secret(request)
        refusal = throttle.refusal(request.client_address, secret)
        if refusal is not None and not self.services.keys.known_valid(secret):
            self._count_refusal(refusal)
            raise refusal

    def _count_refusal(self, error: TokenmillError) -> None:
        if self.services.metrics is not None:
            self.services.metrics.auth_failures.labels(error.code or "unknown").inc()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.services.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(services: Services) -> GatewayApp:
    return GatewayApp(services)
