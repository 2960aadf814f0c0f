"""The bundled model, loaded once per session in this process, and once more as a live server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.lora import write_random_lora
from tests.processes import serving
from tokenmill.engine.__main__ import bundled_model_path
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.weights import compute_weights
from tokenmill.fleet.local import free_port

RUNNER_CONTEXT_TOKENS = 1024
SERVER_CONTEXT_TOKENS = 2048
SERVER_KV_CACHE_TOKENS = 4096
SERVED_NAME = "smollm2"
# SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_end|>, <empty_output>); a logit bias
# of -100 on them keeps a request generating until it is cancelled or runs out of budget.
EOG_TOKENS = (0, 2, 4)
NEVER_STOP = {str(token): -100 for token in EOG_TOKENS}
STARTUP_SECONDS = 120
ADAPTERS = ("a0", "a1")


@pytest.fixture(scope="session")
def model_path() -> Path:
    return bundled_model_path()


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="session")
def adapters_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two random LoRA adapters of the bundled model, and one llama.cpp refuses."""
    directory = tmp_path_factory.mktemp("adapters")
    for seed, name in enumerate(ADAPTERS):
        write_random_lora(directory / f"{name}.gguf", model_path, seed=seed)
    write_random_lora(directory / "other-arch.gguf", model_path, seed=9, architecture="gemma3")
    return directory


def _runner(model_path: Path, weights_cache: Path, *, mix_adapters: bool) -> LlamaRunner:
    return LlamaRunner(
        compute_weights(model_path, "auto", weights_cache),
        context_tokens=RUNNER_CONTEXT_TOKENS,
        kv_cache_tokens=4 * RUNNER_CONTEXT_TOKENS,
        max_step_tokens=256,
        slots=16,
        threads=2,
        mix_adapters=mix_adapters,
    )


@pytest.fixture(scope="session")
def runner(model_path: Path, weights_cache: Path) -> Iterator[LlamaRunner]:
    """The runner as a replica builds it, with the weights it computes with."""
    loaded = _runner(model_path, weights_cache, mix_adapters=False)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def mixing_runner(model_path: Path, weights_cache: Path) -> Iterator[LlamaRunner]:
    """The runner as a replica serving adapters builds it: adapters mixed in one decode."""
    loaded = _runner(model_path, weights_cache, mix_adapters=True)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def server_url(
    model_path: Path,
    weights_cache: Path,
    adapters_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("engine") / "server.log"
    command = [
        sys.executable, "-m", "tokenmill.engine",
        "--model", str(model_path),
        "--served-name", SERVED_NAME,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--threads", "2",
        "--context-tokens", str(SERVER_CONTEXT_TOKENS),
        "--kv-cache-tokens", str(SERVER_KV_CACHE_TOKENS),
        "--weights-cache", str(weights_cache),
        "--adapters-dir", str(adapters_dir),
        "--log-level", "warning",
    ]  # fmt: skip
    with serving(command, port, log_path, STARTUP_SECONDS) as url:
        yield url


@pytest.fixture
def client(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=120) as http:
        yield http
