"""Fleet backends: where a placed replica's process actually runs.

One interface, two implementations: ``LocalBackend`` (subprocesses on this machine, the
default) and ``RayBackend`` (``tokenmill.fleet.ray_backend``: Ray actors on a Ray cluster).
The controller decides what runs where; a backend only starts, watches and stops processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings
from tokenmill.fleet.local import die_with_parent, free_port, stop_process, tail_lines
from tokenmill.fleet.placement import Assignment

log = logging.getLogger(__name__)


class ReplicaProcess(Protocol):
    url: str
    log_path: Path | None

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None:
        """How the process ended (negative: the signal that killed it); None while it runs or
        when nobody can tell."""
        ...

    def log_tail(self, lines: int = 20) -> str: ...

    def stop(self, grace_seconds: float = 10.0) -> None: ...

    def kill(self) -> None: ...


class Backend(Protocol):
    name: str

    def free_port(self, assignment: Assignment) -> int: ...

    def launch(
        self, adapter: EngineAdapter, settings: LaunchSettings, assignment: Assignment
    ) -> ReplicaProcess: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class LocalProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        return tail_lines(self.log_path, lines)

    def stop(self, grace_seconds: float = 10.0) -> None:
        stop_process(self.process, grace_seconds)

    def kill(self) -> None:
        stop_process(self.process, 0)


class LocalBackend:
    name = "local"

    def __init__(self, log_dir: Path, host: str = "127.0.0.1") -> None:
        self.log_dir = log_dir
        self.host = host

    def free_port(self, assignment: Assignment) -> int:
        return free_port(self.host)

    def launch(
        self, adapter: EngineAdapter, settings: LaunchSettings, assignment: Assignment
    ) -> LocalProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"replica-{assignment.replica_id}.log"
        command = adapter.command(settings)
        log.info("starting %s on port %d: %s", assignment.replica_id, settings.port, command)
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
                env={**os.environ, **adapter.env(settings)},
            )
        return LocalProcess(f"http://{settings.host}:{settings.port}", process, log_path)

    def close(self) -> None:
        pass
