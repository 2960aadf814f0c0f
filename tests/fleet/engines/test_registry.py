from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines import ENGINES, LaunchSettings, adapter_for


def test_every_engine_a_deployment_may_name() -> None:
    assert sorted(ENGINES) == ["llama-server", "sglang", "tokenmill", "tokenmill-embed", "vllm"]
    for name, adapter in ENGINES.items():
        assert adapter_for(name) is adapter
        assert adapter.name == name


def test_an_unknown_engine_is_a_clear_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as info:
        adapter_for("tgi")
    assert info.value.param == "engine"
    assert "'tgi'" in info.value.message and "vllm" in info.value.message


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"port": 0}, "port"),
        ({"served_name": ""}, "served_name"),
        ({"context_tokens": 1}, "context_tokens"),
        ({"max_running": 0}, "max_running"),
        ({"kv_cache_tokens": 100}, "kv_cache_tokens"),
        ({"speculative_tokens": -1}, "speculative_tokens"),
        ({"accelerators": -1}, "accelerators"),
        ({"gpu_memory_fraction": 1.5}, "gpu_memory_fraction"),
    ],
)
def test_launch_settings_are_validated(changes: dict[str, object], param: str) -> None:
    values: dict[str, object] = {"model_path": Path("/m"), "served_name": "m", "port": 8000}
    with pytest.raises(InvalidRequest) as info:
        LaunchSettings(**{**values, **changes})  # type: ignore[arg-type]
    assert info.value.param == param
