"""An evaluation's model calls, made the way a batch's lines are (``batch_lines``): as the
evaluation's key, parsed and admitted like the same call from a client, posted through the
router by the ``PlatformCaller``, metered and billed to the tenant (at the interactive price).

A chat example's loss needs the text the model answers after: its messages rendered with the
chat template of the model that serves it (a fine-tune's is its base's), read from the GGUF
file once per file.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo, RequestCounts
from tokenmill.batches.status import BatchStatus
from tokenmill.catalog.gguf import read_gguf
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.errors import TokenmillError
from tokenmill.evals.objects import EvalInfo
from tokenmill.evals.scoring import Reply
from tokenmill.gateway.batch_lines import PlatformLineSender, PrincipalOf
from tokenmill.gateway.directory import ModelDirectory


@functools.lru_cache(maxsize=16)
def _template(path: Path) -> ChatTemplate | None:
    source = read_gguf(path).chat_template
    return ChatTemplate(source) if source else None


class PlatformEvalCalls:
    def __init__(
        self,
        lines: PlatformLineSender,
        principal_of: PrincipalOf,
        directory: ModelDirectory,
        models: ModelRepository,
        clock: Clock,
    ) -> None:
        self._lines = lines
        self._principal_of = principal_of
        self._directory = directory
        self._models = models
        self._clock = clock
        self._numbers = itertools.count(1)

    def send(self, info: EvalInfo, path: str, body: dict[str, Any]) -> Reply:
        now = self._clock.utcnow()
        batch = BatchInfo(
            id=info.id,
            tenant_id=info.tenant_id,
            key_id=info.key_id,
            endpoint=path,
            input_file_id="",
            completion_window="24h",
            status=BatchStatus.IN_PROGRESS,
            counts=RequestCounts(),
            created_at=now,
            expires_at=now,
        )
        number = next(self._numbers)
        result = self._lines(batch, BatchRequest(number, f"{info.id}-{number}", path, body))
        if result.status_code is None:
            return Reply(500, {"error": result.error})
        return Reply(result.status_code, result.body or {})

    def render(self, info: EvalInfo, model: str, messages: list[dict[str, Any]]) -> str | None:
        """None when the model is not the key's to use or has no chat template."""
        principal = self._principal_of(info.key_id)
        if principal is None:
            return None
        try:
            entry = self._directory.resolve(model, principal)
            template = self._served_template(entry.runs_on)
            return None if template is None else template.render(messages)
        except (TokenmillError, OSError, ValueError):
            return None

    def _served_template(self, served_name: str) -> ChatTemplate | None:
        model_id, _, version = served_name.partition("@")
        found = self._models.require(model_id).version(version or None)
        return None if found is None else _template(Path(found.artifact))
