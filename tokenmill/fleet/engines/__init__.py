"""Engine adapters: how the fleet launches and observes each kind of engine, by name.

``ENGINES`` holds one adapter per engine a deployment may name, built with the default
launcher (the program on ``PATH``, or this interpreter for Python engines).
"""

from __future__ import annotations

from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings, ReplicaMetrics
from tokenmill.fleet.engines.builtin import TokenmillAdapter, TokenmillEmbedAdapter
from tokenmill.fleet.engines.llama_server import LlamaServerAdapter
from tokenmill.fleet.engines.sglang import SglangAdapter
from tokenmill.fleet.engines.vllm import VllmAdapter

ENGINES: dict[str, EngineAdapter] = {
    adapter.name: adapter
    for adapter in (
        TokenmillAdapter(),
        TokenmillEmbedAdapter(),
        VllmAdapter(),
        SglangAdapter(),
        LlamaServerAdapter(),
    )
}


def adapter_for(name: str) -> EngineAdapter:
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise InvalidRequest(
            f"Unknown engine '{name}'; known engines: {known}.", param="engine"
        ) from None


__all__ = [
    "ENGINES",
    "EngineAdapter",
    "LaunchSettings",
    "LlamaServerAdapter",
    "ReplicaMetrics",
    "SglangAdapter",
    "TokenmillAdapter",
    "TokenmillEmbedAdapter",
    "VllmAdapter",
    "adapter_for",
]
