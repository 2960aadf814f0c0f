"""The embedding replica's HTTP API: ``/v1/embeddings``, models, health and metrics.

Same conventions as the chat engine's server (``x-request-id`` echoed or made, errors in
OpenAI's shape), without importing it: that module loads llama.cpp, which this replica never
needs.

``dimensions`` is accepted only when it equals the model's width. OpenAI shortens embeddings
(truncate, then re-normalise) only for models trained for it (text-embedding-3-*) and refuses
``dimensions`` for text-embedding-ada-002; all-MiniLM-L6-v2 was not trained that way, so a
shortened vector would quietly lose quality. Refusing is the honest answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenmill.clock import Clock, SystemClock
from tokenmill.engine.embed.batcher import Batcher
from tokenmill.engine.embed.metrics import EmbedMetrics
from tokenmill.engine.embed.model import EmbeddingModel, Vectors
from tokenmill.engine.http import (
    replica_app,
)
from tokenmill.errors import (
    InvalidRequest,
    ModelNotFound,
)
from tokenmill.protocol.embeddings import EmbeddingsRequest, parse_embeddings
from tokenmill.protocol.requests import parse_json_body

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_INPUTS = 256


def build_app(
    model: EmbeddingModel,
    served_name: str,
    *,
    max_batch_inputs: int = DEFAULT_MAX_BATCH_INPUTS,
    clock: Clock | None = None,
) -> Starlette:
    batcher = Batcher(model.embed, max_batch_inputs=max_batch_inputs)
    routes = _Routes(model, batcher, served_name, clock or SystemClock())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    return replica_app(
        [
            Route("/v1/embeddings", routes.embeddings, methods=["POST"]),
            Route("/v1/models", routes.models, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
        ],
        lifespan,
    )


class _Routes:
    def __init__(
        self, model: EmbeddingModel, batcher: Batcher, served_name: str, clock: Clock
    ) -> None:
        self._model = model
        self._batcher = batcher
        self._served_name = served_name
        self._clock = clock
        self._created = int(clock.utcnow().timestamp())
        self._metrics = EmbedMetrics(
            running=lambda: batcher.running, waiting=lambda: batcher.waiting
        )

    async def embeddings(self, request: Request) -> Response:
        started = self._clock.monotonic()
        body = parse_json_body(await request.body())
        parsed = parse_embeddings(body, max_dimensions=self._model.dimensions)
        self._check(parsed)
        tokens = await asyncio.to_thread(self._model.tokenize, parsed.input)
        vectors = await self._batcher.submit(tokens)
        prompt_tokens = sum(len(ids) for ids in tokens)
        self._metrics.request_finished(
            prompt_tokens=prompt_tokens, latency_seconds=self._clock.monotonic() - started
        )
        return _json(
            {
                "object": "list",
                "data": _data(vectors, parsed),
                "model": self._served_name,
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
            }
        )

    def _check(self, parsed: EmbeddingsRequest) -> None:
        if parsed.model != self._served_name:
            raise ModelNotFound(
                f"The model {parsed.model!r} is not served here; this replica serves "
                f"{self._served_name!r}.",
                param="model",
            )
        if parsed.dimensions is not None and parsed.dimensions != self._model.dimensions:
            raise InvalidRequest(
                f"This model does not support shortened embeddings: 'dimensions' must be "
                f"{self._model.dimensions} or absent, got {parsed.dimensions}.",
                param="dimensions",
            )

    async def models(self, request: Request) -> Response:
        model = {
            "id": self._served_name,
            "object": "model",
            "created": self._created,
            "owned_by": "tokenmill",
            "max_model_len": self._model.max_input_tokens,
        }
        return _json({"object": "list", "data": [model]})

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", "model": self._served_name})

    async def metrics(self, request: Request) -> Response:
        return Response(
            self._metrics.render(), headers={"content-type": self._metrics.content_type}
        )


def _data(vectors: Vectors, parsed: EmbeddingsRequest) -> list[dict[str, Any]]:
    if parsed.encoding_format == "base64":
        little = vectors.astype("<f4", copy=False)
        encoded: list[Any] = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        encoded = list(vectors)  # numpy rows, serialised by orjson as float32
    return [
        {"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(encoded)
    ]


def _json(data: Any) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )
