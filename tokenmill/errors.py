"""The error tree shared by every layer, and its one mapping to HTTP and OpenAI's error shape.

Code raises these; the HTTP edges (gateway and engine servers) turn them into
``{"error": {"message", "type", "param", "code"}}`` with the status each class carries.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class TokenmillError(Exception):
    """Base of every error a client may see."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class InvalidRequest(TokenmillError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class InvalidArtifact(InvalidRequest):
    """A model file that cannot be served: not the format it claims, truncated or corrupt."""

    default_code = "invalid_artifact"


class Unauthorized(TokenmillError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(TokenmillError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class NotFound(TokenmillError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class Conflict(InvalidRequest):
    """The request clashes with what exists (a duplicate name); still an ``InvalidRequest``."""

    status = 409
    default_code = "conflict"


class PayloadTooLarge(InvalidRequest):
    """An upload over a size limit (one file's, or the tenant's storage quota)."""

    status = 413
    default_code = "file_too_large"


class MethodNotAllowed(TokenmillError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RateLimited(TokenmillError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class InsufficientQuota(TokenmillError):
    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class ServiceUnavailable(TokenmillError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class MeteringUnavailable(ServiceUnavailable):
    """Usage cannot be recorded safely (the journal's disk fails and the database is behind):
    new work waits rather than be served unmetered."""

    default_code = "metering_unavailable"


class UpstreamError(TokenmillError):
    status = 502
    type = "server_error"
    default_code = "upstream_error"


class HubError(TokenmillError):
    """A model hub failed us: unreachable, a bad answer, or bytes that do not match its hashes."""

    status = 502
    type = "server_error"
    default_code = "hub_error"


class EngineOverloaded(TokenmillError):
    status = 503
    type = "server_error"
    default_code = "engine_overloaded"


class NoCapacity(ServiceUnavailable):
    """Placement found no accelerator that can take a replica; the message names the constraint."""

    default_code = "no_capacity"
