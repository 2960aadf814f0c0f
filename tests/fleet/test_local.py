from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tokenmill.catalog.bundled import bundled_model
from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.local import ReplicaSpec, free_port, start_replica


def test_free_port_is_bindable() -> None:
    assert 0 < free_port() < 65536


def test_a_replica_starts_serves_and_stops(tmp_path: Path) -> None:
    model = bundled_model("smollm2-135m-instruct")
    spec = ReplicaSpec(model.id, model.path(), threads=1, context_tokens=512)
    replica = start_replica(spec, tmp_path)
    try:
        replica.wait_ready(120)
        health = httpx.get(f"{replica.url}/health", timeout=5).json()
        assert health["status"] == "ok"
    finally:
        replica.stop()
    assert not replica.alive()
    assert replica.log_path.exists()


def test_a_replica_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    replica = start_replica(ReplicaSpec("bogus", bogus, threads=1, context_tokens=512), tmp_path)
    with pytest.raises(ServiceUnavailable) as info:
        replica.wait_ready(60)
    assert str(replica.log_path) in info.value.message
    assert not replica.alive()


def test_engine_arguments_follow_the_spec() -> None:
    spec = ReplicaSpec(
        "m", Path("/models/m.gguf"), threads=2, context_tokens=1024, kv_cache_tokens=4096,
        max_running=8, speculative_tokens=4,
    )  # fmt: skip
    args = spec.engine_args()
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs == {
        "--model": "/models/m.gguf",
        "--served-name": "m",
        "--threads": "2",
        "--context-tokens": "1024",
        "--speculative-tokens": "4",
        "--kv-cache-tokens": "4096",
        "--max-running": "8",
    }
    assert "--kv-cache-tokens" not in ReplicaSpec("m", Path("m"), 1, 512).engine_args()
