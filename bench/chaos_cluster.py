"""The platform the chaos benchmark runs: its roles as separate processes on one machine.

Controllers (``tokenmill controller``, each with its ``/health`` and ``/metrics`` on a port
of its own; the leader's replicas are its children) and gateways (``tokenmill gateway``,
all on one port with SO_REUSEPORT), sharing PostgreSQL, Redis (a namespace of the run's
own) and a data directory. Every process is started in a session of its own (a Ctrl-C
reaches only the benchmark) and dies with the benchmark; a killed one is started again by
the benchmark, as a service manager would. Every process ever seen in a member's tree is
remembered, so ``stop_all`` leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import processes
from bench import soak_probe as probe
from tokenmill.fleet.local import die_with_parent, free_port

MODEL = "smollm2-135m-instruct"


def platform_env(
    data_dir: Path, database_url: str, redis_url: str, namespace: str
) -> dict[str, str]:
    """One small chat model, one replica of it with one engine thread and a small context."""
    return {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(data_dir),
        "TOKENMILL_CONFIG": str(data_dir / "none.toml"),
        "TOKENMILL_DATABASE_URL": database_url,
        "TOKENMILL_REDIS_URL": redis_url,
        "TOKENMILL_REDIS_NAMESPACE": namespace,
        "TOKENMILL_BUNDLED_MODELS": json.dumps([MODEL]),
        "TOKENMILL_BUNDLED_MIN_REPLICAS": "1",
        "TOKENMILL_BUNDLED_MAX_REPLICAS": "1",
        "TOKENMILL_ENGINE_THREADS": "1",
        "TOKENMILL_ENGINE_CONTEXT_TOKENS": "1024",
        "TOKENMILL_TUNING_WORKERS": "0",
        "TOKENMILL_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass(slots=True)
class Member:
    name: str  # controller-1, gateway-2, ...
    command: list[str]
    log: Path
    health_url: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass(slots=True)
class Cluster:
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)  # the gateways' one port
    members: dict[str, Member] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)  # pid → start ticks, every tree

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_controller(self, index: int) -> Member:
        port = free_port()
        tokenmill = str(Path(sys.executable).with_name("tokenmill"))
        command = [tokenmill, "controller", "--models", MODEL, "--metrics-port", str(port)]
        return self._add(f"controller-{index}", command, f"http://127.0.0.1:{port}/health")

    def add_gateway(self, index: int) -> Member:
        tokenmill = str(Path(sys.executable).with_name("tokenmill"))
        command = [tokenmill, "gateway", "--host", "127.0.0.1", "--port", str(self.port)]
        return self._add(f"gateway-{index}", command, f"{self.base}/health")

    def _add(self, name: str, command: list[str], health_url: str) -> Member:
        member = Member(name, command, self.data_dir / f"{name}.log", health_url)
        self.members[name] = member
        return member

    def start(self, name: str) -> Member:
        member = self.members[name]
        with open(member.log, "ab") as log:
            member.process = subprocess.Popen(
                member.command, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the benchmark, which stops it
                preexec_fn=die_with_parent,  # and it gets SIGTERM if the benchmark is killed
            )  # fmt: skip
        member.starts += 1
        self.remember()
        return member

    def kill(self, name: str) -> int:
        """SIGKILL, as ``kill -9``; the pid killed."""
        member = self.members[name]
        assert member.process is not None
        self.remember()
        os.kill(member.process.pid, signal.SIGKILL)
        member.process.wait(10)
        return member.process.pid

    def remember(self) -> list[probe.Proc]:
        tree = []
        for member in self.members.values():
            if member.running() and member.pid is not None:
                tree += processes.remember_tree(member.pid, self.seen)
        return tree

    def controller_health(self, name: str) -> dict[str, Any] | None:
        member = self.members[name]
        if not member.running():
            return None
        try:
            answer = httpx.get(member.health_url, timeout=2)
        except httpx.HTTPError:
            return None
        return dict(answer.json()) if answer.status_code == 200 else None

    def leader(self) -> str | None:
        """The controller that says it leads (the first, should two ever say so)."""
        for name in self.members:
            if name.startswith("controller-"):
                health = self.controller_health(name)
                if health is not None and health.get("leading"):
                    return name
        return None

    def replicas(self, name: str) -> list[probe.Proc]:
        """The replica processes under a member (a controller's fleet)."""
        member = self.members[name]
        if not member.running() or member.pid is None:
            return []
        tree = processes.remember_tree(member.pid, self.seen)
        return [p for p in tree if probe.role_of(p, member.pid).startswith("replica")]

    def stop_all(self) -> dict[str, Any]:
        """Gateways, then controllers (SIGTERM, then SIGKILL); then whatever of any tree is
        left is killed."""
        self.remember()
        how = {}
        order = sorted(self.members.values(), key=lambda m: not m.name.startswith("gateway"))
        for member in order:
            if member.process is not None:
                how[member.name] = processes.stop(member.process, processes.FIRM)[0]
        return {"signals": how, "left_behind": processes.kill_left_behind(self.seen)}
