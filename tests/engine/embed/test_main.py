from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import serving
from tokenmill.engine.embed.__main__ import BUNDLED_SERVED_NAME, main, parse_args
from tokenmill.fleet.local import free_port

STARTUP_SECONDS = 120


def test_flags_match_the_chat_engines_where_they_overlap() -> None:
    args = parse_args(
        [
            "--model",
            "/m",
            "--served-name",
            "e",
            "--host",
            "0.0.0.0",
            "--port",
            "9",
            "--threads",
            "3",
        ]
    )
    assert (args.model, args.served_name, args.host, args.port, args.threads) == (
        Path("/m"),
        "e",
        "0.0.0.0",
        9,
        3,
    )
    for bad in (["--threads", "0"], ["--max-batch-inputs", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_a_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    assert main(["--model", str(tmp_path)]) == 2


@pytest.fixture(scope="module")
def replica_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("embed") / "replica.log"
    command = [
        sys.executable, "-m", "tokenmill.engine.embed",
        "--port", str(port), "--threads", "1", "--log-level", "warning",
    ]  # fmt: skip
    with serving(command, port, log_path, STARTUP_SECONDS) as url:
        yield url


def test_the_bundled_model_serves_by_default(replica_url: str) -> None:
    reply = httpx.post(
        f"{replica_url}/v1/embeddings",
        json={"model": BUNDLED_SERVED_NAME, "input": ["hello", "world"]},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert [len(d["embedding"]) for d in reply.json()["data"]] == [384, 384]
    assert reply.json()["usage"]["prompt_tokens"] == 6
