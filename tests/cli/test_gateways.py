"""The separate roles as processes: ``serve --gateways 2`` (two gateways on one port, the fleet
behind them through the board, a killed gateway started again) and two ``tokenmill
controller``s (one leads; the standby takes over when the leader is killed with -9)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.processes import start_process
from tokenmill.fleet.local import free_port, stop_process

CHAT = "smollm2-135m-instruct"


def platform_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(tmp_path / "data"),
        "TOKENMILL_CONFIG": str(tmp_path / "absent.toml"),
        "TOKENMILL_LOG_LEVEL": "info",
        **extra,
    }
    env.pop("TOKENMILL_DATABASE_URL", None)
    return env


def until(condition: Callable[[], Any], timeout_seconds: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            found = condition()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int, marker: str) -> list[int]:
    """Live child processes of ``pid`` whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and marker in command:
            found.append(int(entry.name))
    return found


def admin_key(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if "TOKENMILL_API_KEY=" in line:
            return line.strip().split("=", 1)[1]
    raise AssertionError("no admin key was printed")


@pytest.fixture
def two_gateways(
    tmp_path: Path, redis_server: str, redis_namespace: str
) -> Iterator[tuple[str, str, subprocess.Popen[str], Path]]:
    """``tokenmill serve --gateways 2`` with the chat model, scaled from zero on demand."""
    port = free_port()
    env = platform_env(
        tmp_path,
        TOKENMILL_PORT=str(port),
        TOKENMILL_REDIS_URL=redis_server,
        TOKENMILL_REDIS_NAMESPACE=redis_namespace,
        TOKENMILL_BUNDLED_MIN_REPLICAS="0",
        TOKENMILL_ENGINE_THREADS="1",
        TOKENMILL_ENGINE_CONTEXT_TOKENS="512",
    )
    command = [sys.executable, "-m", "tokenmill.cli.main", "serve", "--gateways", "2",
               "--models", CHAT]  # fmt: skip
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = start_process(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        secret = admin_key(process)
        base = f"http://127.0.0.1:{port}"
        until(lambda: len(children(process.pid, " gateway")) == 2, 60, "two gateways")
        until(lambda: httpx.get(f"{base}/health", timeout=2).is_success, 60, "a gateway")
        yield base, secret, process, tmp_path / "data"
    finally:
        stop_process(process, grace_seconds=30)
        assert children(process.pid, "") == [], log_path.read_text()


def ask(base: str, secret: str) -> tuple[str, int]:
    """One chat on a connection of its own; (the request id, completion tokens)."""
    with openai.OpenAI(base_url=f"{base}/v1", api_key=secret, timeout=120) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT, messages=[{"role": "user", "content": "Say hi"}], max_tokens=3
        )
        reply = raw.parse()
        assert reply.usage is not None
        return raw.headers["x-request-id"], reply.usage.completion_tokens


def test_two_gateways_share_one_port_and_a_fleet(
    two_gateways: tuple[str, str, subprocess.Popen[str], Path],
) -> None:
    base, secret, serve, data_dir = two_gateways
    first_id, _ = ask(base, secret)  # no replica yet: the gateway's demand starts one
    ids = [first_id] + [ask(base, secret)[0] for _ in range(11)]
    # A request id's prefix is its gateway process's: connections reached both.
    assert len({request_id[:20] for request_id in ids}) == 2, ids

    admin = {"authorization": f"Bearer {secret}"}
    deployments = httpx.get(f"{base}/admin/v1/deployments", headers=admin, timeout=10).json()
    chat = next(d for d in deployments["data"] if d["model"] == CHAT)
    assert [r["state"] for r in chat["replicas"]] == ["ready"]  # the fleet's status, via the board

    def metered() -> bool:
        with sqlite3.connect(f"file:{data_dir / 'tokenmill.db'}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT request_id, http_status FROM usage_records").fetchall()
        return {request_id for request_id, status in rows if status == 200} >= set(ids)

    until(metered, 30, "every request's usage record")

    victim = children(serve.pid, " gateway")[0]
    os.kill(victim, signal.SIGKILL)
    until(lambda: len(set(children(serve.pid, " gateway")) - {victim}) == 2, 30, "a new gateway")
    after = [ask(base, secret)[0] for _ in range(4)]
    assert len(after) == 4


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    env = platform_env(tmp_path, TOKENMILL_BUNDLED_MODELS="[]", TOKENMILL_LEADER_LEASE_SECONDS="2")
    started = []
    try:
        for name in ("one", "two"):
            port = free_port()
            command = [sys.executable, "-m", "tokenmill.cli.main", "controller",
                       "--metrics-port", str(port)]  # fmt: skip
            with (tmp_path / f"{name}.log").open("w") as log:
                process = start_process(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True
                )
            url = f"http://127.0.0.1:{port}"
            until(lambda url=url: httpx.get(f"{url}/health", timeout=2).is_success, 60, name)
            started.append((process, url))
        yield started
    finally:
        for process, _ in started:
            stop_process(process, grace_seconds=20)


def test_the_standby_controller_takes_over_when_the_leader_is_killed(
    controllers: list[tuple[subprocess.Popen[str], str]],
) -> None:
    def health(url: str) -> dict[str, Any]:
        return httpx.get(f"{url}/health", timeout=2).json()  # type: ignore[no-any-return]

    def leaders() -> list[str]:
        return [url for _, url in controllers if health(url)["leading"]]

    until(lambda: len(leaders()) == 1, 30, "one leader")
    leader_url = leaders()[0]
    leader = next(p for p, url in controllers if url == leader_url)
    standby_url = next(url for _, url in controllers if url != leader_url)
    epoch = health(leader_url)["epoch"]
    metrics = httpx.get(f"{leader_url}/metrics", timeout=2).text
    assert "tokenmill_gateway_requests" in metrics or "# HELP" in metrics

    leader.send_signal(signal.SIGKILL)
    leader.wait(10)
    until(lambda: health(standby_url)["leading"], 30, "the standby to lead")
    assert health(standby_url)["epoch"] == epoch + 1
