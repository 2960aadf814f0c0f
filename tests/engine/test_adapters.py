"""Adapter ids and the cache of loaded adapters alone: no model, no llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.engine.adapters import AdapterCache, parse_adapter
from tokenmill.errors import InvalidArtifact, InvalidRequest, ModelNotFound
from tokenmill.protocol.tenancy import ADAPTER_HEADER


class Loader:
    """Stands in for the runner: a handle per load, ValueError for a file named bad-*."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, path: Path) -> object:
        if path.stem.startswith("bad"):
            raise ValueError("not an adapter of this model")
        self.loads.append(path.stem)
        return object()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    for name in ("a", "b", "c", "bad-file"):
        (tmp_path / f"{name}.gguf").write_bytes(b"x")
    return tmp_path


def cache(directory: Path | None, capacity: int = 2) -> tuple[AdapterCache, Loader]:
    loader = Loader()
    return AdapterCache(directory, loader, capacity=capacity), loader


@pytest.mark.parametrize("value", ["ft-1", "ftjob-abc123", "a", "A.b_c-d", "x" * 128])
def test_ids_that_name_an_adapter(value: str) -> None:
    assert parse_adapter({ADAPTER_HEADER: value}) == value


def test_no_header_or_an_empty_one_is_the_base_model() -> None:
    assert parse_adapter({}) is None
    assert parse_adapter({ADAPTER_HEADER: ""}) is None


@pytest.mark.parametrize(
    "value", ["../etc/passwd", "a/b", "..", ".hidden", "-x", "a b", "a\\b", "x" * 129, "é"]
)
def test_a_malformed_id_is_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_adapter({ADAPTER_HEADER: value})
    assert caught.value.status == 400
    assert caught.value.param == ADAPTER_HEADER


def test_an_adapter_is_loaded_once_and_pinned_per_use(directory: Path) -> None:
    adapters, loader = cache(directory)
    adapters.pin("a")
    adapters.pin("a")
    assert loader.loads == ["a"]
    handle = adapters.handle("a")
    adapters.unpin("a")
    adapters.unpin("a")
    assert adapters.loaded() == ["a"]  # kept while there is room
    adapters.pin("a")
    assert adapters.handle("a") is handle
    assert loader.loads == ["a"]


def test_the_least_recently_used_idle_adapter_is_evicted_and_handed_back(directory: Path) -> None:
    adapters, loader = cache(directory, capacity=2)
    for name in ("a", "b"):
        adapters.pin(name)
        adapters.unpin(name)
    adapters.pin("a")  # a is now the most recently used
    adapters.unpin("a")
    evicted = adapters.handle("b")
    adapters.pin("c")
    assert adapters.loaded() == ["a", "c"]
    assert adapters.drain() == [evicted]
    assert adapters.drain() == []
    adapters.pin("b")  # loaded again
    assert loader.loads == ["a", "b", "c", "b"]


def test_an_adapter_in_use_is_never_evicted(directory: Path) -> None:
    adapters, _ = cache(directory, capacity=1)
    adapters.pin("a")
    adapters.pin("b")  # over capacity while both are in use
    assert sorted(adapters.loaded()) == ["a", "b"]
    assert adapters.drain() == []
    adapters.unpin("b")
    assert adapters.loaded() == ["a"]  # b is idle: evicted, a still in use
    assert len(adapters.drain()) == 1
    adapters.unpin("a")
    assert adapters.loaded() == ["a"]


def test_an_unknown_adapter_is_a_404_naming_it(directory: Path) -> None:
    adapters, loader = cache(directory)
    with pytest.raises(ModelNotFound) as caught:
        adapters.pin("missing")
    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"
    assert "'missing'" in caught.value.message
    assert loader.loads == []
    assert adapters.loaded() == []


def test_without_a_directory_every_adapter_is_unknown() -> None:
    adapters, _ = cache(None)
    assert not adapters.enabled
    with pytest.raises(ModelNotFound):
        adapters.pin("a")


def test_a_file_llama_cpp_refuses_is_a_400(directory: Path) -> None:
    adapters, _ = cache(directory)
    with pytest.raises(InvalidArtifact) as caught:
        adapters.pin("bad-file")
    assert caught.value.status == 400
    assert adapters.loaded() == []


def test_an_id_is_checked_again_before_it_becomes_a_path(directory: Path) -> None:
    adapters, _ = cache(directory)
    with pytest.raises(InvalidRequest):
        adapters.pin("../a")


def test_unpin_without_pin_is_a_bug(directory: Path) -> None:
    adapters, _ = cache(directory)
    with pytest.raises(RuntimeError):
        adapters.unpin("a")


def test_clear_hands_back_every_idle_adapter(directory: Path) -> None:
    adapters, _ = cache(directory, capacity=3)
    adapters.pin("a")
    adapters.pin("b")
    adapters.unpin("b")
    assert len(adapters.clear()) == 1
    assert adapters.loaded() == ["a"]
