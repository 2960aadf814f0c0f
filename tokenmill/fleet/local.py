"""The ``local`` fleet backend: engine replicas as subprocesses on this machine."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmill.errors import ServiceUnavailable

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    model_id: str
    model_path: Path
    threads: int
    context_tokens: int
    kv_cache_tokens: int | None = None
    max_running: int | None = None
    speculative_tokens: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def engine_args(self) -> list[str]:
        """The ``tokenmill.engine`` command line for these settings."""
        args = [
            "--model", str(self.model_path),
            "--served-name", self.model_id,
            "--threads", str(self.threads),
            "--context-tokens", str(self.context_tokens),
            "--speculative-tokens", str(self.speculative_tokens),
        ]  # fmt: skip
        if self.kv_cache_tokens is not None:
            args += ["--kv-cache-tokens", str(self.kv_cache_tokens)]
        if self.max_running is not None:
            args += ["--max-running", str(self.max_running)]
        return args


@dataclass(slots=True)
class LocalReplica:
    spec: ReplicaSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at_monotonic: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceUnavailable(
                    f"Replica of '{self.spec.model_id}' exited with code "
                    f"{self.process.returncode} while starting; see {self.log_path}."
                )
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise ServiceUnavailable(
            f"Replica of '{self.spec.model_id}' was not ready within {timeout_seconds:g} s; "
            f"see {self.log_path}."
        )

    def stop(self, grace_seconds: float = 10.0) -> None:
        stop_process(self.process, grace_seconds)


def stop_process(process: subprocess.Popen[Any], grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL after the grace period; waits for the process to end."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail_lines(path: Path | None, lines: int = 20, max_bytes: int = 16384) -> str:
    """The last ``lines`` lines of a log file (at most its last ``max_bytes``); "" if none."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def describe_exit(code: int | None) -> str:
    """A process's end in words: "exited with code 1", "was killed by signal 11 (SIGSEGV)"."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"was killed by signal {-code}{name}"
    return f"exited with code {code}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Runs in the child before exec: a replica must not outlive a gateway killed with -9."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_replica(spec: ReplicaSpec, log_dir: Path) -> LocalReplica:
    port = spec.port or free_port(spec.host)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"replica-{spec.model_id}-{port}.log"
    command = [
        sys.executable, "-m", "tokenmill.engine", *spec.engine_args(),
        "--host", spec.host, "--port", str(port),
    ]  # fmt: skip
    log.info("starting replica of %s on port %d", spec.model_id, port)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    return LocalReplica(spec=spec, port=port, process=process, log_path=log_path)
