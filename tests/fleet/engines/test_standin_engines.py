"""vLLM, SGLang and llama-server adapters against a stand-in of each engine.

These engines cannot run on this machine (no GPU, no llama-server build), so ``standin.py``
exposes their documented surface: their flags (unknown ones refused), ``/health`` with their
loading behaviour, ``/v1/models``, ``/v1/chat/completions`` and ``/metrics`` with their real
metric names and labels. The stand-in is started with the adapter's exact command line, so a
wrong flag fails here the way it would fail the real engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fleet.engines import standin
from tests.processes import start_process
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings, ReplicaMetrics
from tokenmill.fleet.engines.llama_server import LlamaServerAdapter
from tokenmill.fleet.engines.sglang import SglangAdapter
from tokenmill.fleet.engines.vllm import VllmAdapter
from tokenmill.fleet.local import free_port

ENGINES = ["vllm", "sglang", "llama-server"]
ADAPTERS: dict[str, type[EngineAdapter]] = {
    "vllm": VllmAdapter, "sglang": SglangAdapter, "llama-server": LlamaServerAdapter,
}  # fmt: skip


@dataclass
class Replica:
    adapter: EngineAdapter
    url: str
    process: subprocess.Popen[bytes]

    def health(self) -> tuple[int, bytes] | None:
        """The health answer, or None while nothing listens."""
        try:
            response = httpx.get(self.url + self.adapter.health_path, timeout=2)
        except httpx.TransportError:
            return None
        return response.status_code, response.content

    def wait_ready(self, timeout_seconds: float = 20) -> list[tuple[int, bytes] | None]:
        """Polls until the adapter calls the replica ready; returns every answer seen."""
        seen: list[tuple[int, bytes] | None] = []
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                raise AssertionError(f"exited: {self.process.stderr.read().decode()}")
            answer = self.health()
            seen.append(answer)
            if answer is not None and self.adapter.ready(*answer):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"not ready in {timeout_seconds} s; saw {seen[-3:]}")

    def metrics(self) -> ReplicaMetrics:
        response = httpx.get(self.url + self.adapter.metrics_path, timeout=5)
        assert response.status_code == 200
        return self.adapter.parse_metrics(response.text)


def model_file(tmp_path: Path, engine: str) -> Path:
    """A model path that exists (the stand-in, like the engines, refuses a missing one)."""
    if engine == "llama-server":
        path = tmp_path / "model.gguf"
        path.write_bytes(b"GGUF")
    else:
        path = tmp_path / "model"
        path.mkdir(exist_ok=True)
    return path


@contextmanager
def running_standin(
    engine: str, settings: LaunchSettings, *, loading_seconds: float = 0.0, token_delay: float = 0
) -> Iterator[Replica]:
    launcher = standin.launcher(
        engine, loading_seconds=loading_seconds, token_delay_seconds=token_delay
    )
    adapter = ADAPTERS[engine](launcher)
    process = start_process(
        adapter.command(settings),
        env={**os.environ, **adapter.env(settings)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield Replica(adapter, f"http://{settings.host}:{settings.port}", process)
    finally:
        process.terminate()
        process.wait(10)


def launch_settings(tmp_path: Path, engine: str, **changes: object) -> LaunchSettings:
    values: dict[str, object] = {
        "model_path": model_file(tmp_path, engine), "served_name": "standin-model",
        "port": free_port(), "context_tokens": 2048, "max_running": 1, "accelerators": 1,
        "gpu_memory_fraction": 0.5, "kv_cache_tokens": 8192,
    }  # fmt: skip
    values.update(changes)
    return LaunchSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_standin_refuses_a_flag_the_engine_does_not_have(engine: str, tmp_path: Path) -> None:
    settings = launch_settings(tmp_path, engine, extra_args=("--no-such-flag",))
    with running_standin(engine, settings) as replica:
        assert replica.process.wait(20) == 2
        assert replica.process.stderr is not None
        assert b"unrecognized arguments: --no-such-flag" in replica.process.stderr.read()


@pytest.mark.parametrize("engine", ENGINES)
def test_readiness_against_the_standin_passes_only_once_loaded(engine: str, tmp_path: Path) -> None:
    settings = launch_settings(tmp_path, engine)
    with running_standin(engine, settings, loading_seconds=1.5) as replica:
        seen = replica.wait_ready()
        not_ready = seen[:-1]
        assert not_ready, "the first probe came after loading; the test proved nothing"
        assert all(a is None or not replica.adapter.ready(*a) for a in not_ready)
        if engine == "llama-server":  # it listens at once and says it is loading
            loading = [json.loads(a[1]) for a in not_ready if a is not None and a[0] == 503]
            assert loading and loading[0]["error"]["message"] == "Loading model"
            assert json.loads(seen[-1][1]) == {"status": "ok"}  # type: ignore[index]
        models = httpx.get(replica.url + "/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["standin-model"]


def chat(url: str, words: str, **extra: object) -> dict[str, object]:
    body = {"model": "standin-model", "messages": [{"role": "user", "content": words}], **extra}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200
    result: dict[str, object] = response.json()
    return result


@pytest.mark.parametrize("engine", ENGINES)
def test_metrics_from_the_standin_map_onto_ours(engine: str, tmp_path: Path) -> None:
    settings = launch_settings(tmp_path, engine)
    first, other = "alpha beta gamma delta", "one two three"
    with running_standin(engine, settings, token_delay=0.1) as replica:
        replica.wait_ready()
        idle = replica.metrics()
        assert (idle.requests_running, idle.requests_waiting) == (0, 0)

        # A stream holds the only slot; a second request must wait behind it.
        body = {
            "model": "standin-model", "messages": [{"role": "user", "content": first}],
            "stream": True, "stream_options": {"include_usage": True},
        }  # fmt: skip
        results: list[dict[str, object]] = []
        with httpx.stream("POST", replica.url + "/v1/chat/completions", json=body) as stream:
            lines = stream.iter_lines()
            # The first token means the stream holds the slot (the role chunk comes before).
            assert next(line for line in lines if '"content": "The"' in line)
            waiter = threading.Thread(target=lambda: results.append(chat(replica.url, other)))
            waiter.start()
            busy = wait_for(replica, lambda m: m.requests_waiting == 1)
            assert busy.requests_running == 1
            if engine != "llama-server":
                assert busy.kv_cache_usage is not None and busy.kv_cache_usage > 0
            events = [line.removeprefix("data: ") for line in lines if line.startswith("data:")]
        waiter.join(30)
        assert events[-1] == "[DONE]"
        stream_usage = json.loads(events[-2])["usage"]
        results.append(chat(replica.url, first))  # the same prompt again: a prefix-cache hit

        done = replica.metrics()

    usages = [stream_usage, *(r["usage"] for r in results)]
    prompt_tokens = sum(u["prompt_tokens"] for u in usages)
    generated = sum(u["completion_tokens"] for u in usages)
    assert prompt_tokens == 4 + 3 + 4
    assert (done.requests_running, done.requests_waiting) == (0, 0)
    assert (done.prompt_tokens_total, done.generation_tokens_total) == (prompt_tokens, generated)
    if engine == "llama-server":
        assert done.kv_cache_usage is None and done.prefix_cache_hits is None
        assert done.ttft_seconds_count is None
        assert done.tpot_seconds_count == generated  # seconds generating over tokens generated
        assert done.tpot_seconds_sum is not None and done.tpot_seconds_sum >= 0.1 * generated
        return
    assert done.kv_cache_usage == 0 and done.kv_cache_used_cells == 0
    # vLLM: 4096 * 0.5 blocks of 16 cells (the stand-in's profile); SGLang: --max-total-tokens.
    assert done.kv_cache_total_cells == (2048 * 16 if engine == "vllm" else 8192)
    assert (done.prefix_cache_hits, done.prefix_cache_queries) == (4, prompt_tokens)
    assert done.ttft_seconds_count == 3
    assert done.ttft_seconds_sum is not None and done.ttft_seconds_sum >= 3 * 0.1
    assert done.tpot_seconds_count == generated - 3
    if engine == "sglang":
        assert done.prefix_cache_hit_rate == pytest.approx(4 / prompt_tokens)


def wait_for(
    replica: Replica, condition: Callable[[ReplicaMetrics], bool], timeout_seconds: float = 10
) -> ReplicaMetrics:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        metrics = replica.metrics()
        if condition(metrics):
            return metrics
        time.sleep(0.02)
    raise AssertionError(f"condition not met; last scrape {metrics}")
