"""The machine's services the chaos benchmark breaks, and puts back for certain.

PostgreSQL is the Debian cluster ``15/main`` (``pg_ctlcluster``); Redis is whatever
``redis-server`` answers on 127.0.0.1:6379, started outside any service manager: its settings
are read (``CONFIG GET``) before anything is broken, and it is started again with exactly
those. The journal's disk is a small tmpfs mounted over the data directory's ``journal``,
filled with one file until the kernel says ENOSPC. ``ensure_running`` is the promise kept in
every ``finally``: PostgreSQL and Redis up and answering, whatever happened.
"""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path
from typing import Any

PG_CLUSTER = ("15", "main")
PG_HOST, PG_PORT = "127.0.0.1", "5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", "6379"
# What Redis is started with again, as it was running (CONFIG GET each).
REDIS_SETTINGS = (
    "bind", "port", "daemonize", "save", "appendonly", "logfile", "pidfile", "dir",
    "dbfilename", "protected-mode", "maxmemory", "maxmemory-policy",
)  # fmt: skip
SERVICE_WAIT_SECONDS = 60.0
FILL_CHUNK_BYTES = 256 * 1024


def _run(*command: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _wait(ready: Any, seconds: float = SERVICE_WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.2)
    return bool(ready())


# PostgreSQL


def postgres_ready() -> bool:
    return _run("pg_isready", "-h", PG_HOST, "-p", PG_PORT, timeout=10).returncode == 0


def restart_postgres() -> dict[str, Any]:
    began = time.monotonic()
    done = _run("pg_ctlcluster", *PG_CLUSTER, "restart")
    return {
        "exit_code": done.returncode,
        "seconds": round(time.monotonic() - began, 2),
        "ready": _wait(postgres_ready),
        "stderr": done.stderr.strip()[-300:],
    }


def fresh_database(name: str) -> None:
    """The benchmark's own database, empty (it is dropped first if it exists)."""
    psql = ("psql", "-h", PG_HOST, "-p", PG_PORT, "-U", "postgres", "-v", "ON_ERROR_STOP=1")
    for statement in (
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    ):
        done = _run(*psql, "-c", statement)
        if done.returncode != 0:
            raise RuntimeError(f"{statement}: {done.stderr.strip()}")


# Redis


def redis_ready() -> bool:
    done = _run("redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "ping", timeout=5)
    return done.stdout.strip() == "PONG"


def redis_settings() -> dict[str, str]:
    """The running Redis's settings that ``start_redis`` passes on again."""
    settings = {}
    for name in REDIS_SETTINGS:
        done = _run("redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "config", "get", name)
        lines = done.stdout.splitlines()
        if done.returncode == 0 and len(lines) >= 2:
            settings[lines[0]] = lines[1]
    if "port" not in settings:
        raise RuntimeError(f"could not read Redis's settings: {done.stderr or done.stdout}")
    return settings


def redis_command(settings: dict[str, str]) -> list[str]:
    """``redis-server --name value ...``; a value of several words (``bind``) is several
    arguments, an empty one (``save``) is one empty argument."""
    command = ["redis-server"]
    for name, value in settings.items():
        command += [f"--{name}", *(value.split() if name == "bind" else [value])]
    if settings.get("daemonize") != "yes":
        command += ["--daemonize", "yes"]  # it must outlive this script
    return command


def stop_redis() -> dict[str, Any]:
    done = _run("redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "shutdown", "nosave")
    return {"stopped": _wait(lambda: not redis_ready(), 15), "output": done.stdout.strip()}


def start_redis(settings: dict[str, str]) -> dict[str, Any]:
    cwd = settings.get("dir") or "/"
    done = subprocess.run(
        redis_command(settings), cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    return {"exit_code": done.returncode, "ready": _wait(redis_ready), "stderr": done.stderr}


def forget_namespace(namespace: str) -> int:
    """Deletes the run's keys (``namespace:*``) from Redis; how many there were."""
    keys = _run("redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "--scan", "--pattern",
                f"{namespace}:*").stdout.split()  # fmt: skip
    for start in range(0, len(keys), 500):
        _run("redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, "del", *keys[start : start + 500])
    return len(keys)


def ensure_running(redis: dict[str, str] | None) -> dict[str, bool]:
    """PostgreSQL and Redis up and answering (started again if they are not)."""
    if not postgres_ready():
        _run("pg_ctlcluster", *PG_CLUSTER, "start")
    if not redis_ready() and redis is not None:
        start_redis(redis)
    return {"postgresql": _wait(postgres_ready), "redis": _wait(redis_ready)}


# the journal's disk


def mount_small_disk(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    if done.returncode != 0:
        raise RuntimeError(f"mount tmpfs on {path}: {done.stderr.strip()} (needs root)")


def unmount(path: Path) -> bool:
    """Unmounts ``path`` if something is mounted there (lazily if it is still busy)."""
    if not path.is_mount():
        return True
    if _run("umount", str(path)).returncode != 0:
        _run("umount", "-l", str(path))
    return not path.is_mount()


def fill(path: Path) -> int:
    """Appends to ``path`` until the disk is full (ENOSPC); the bytes written. Called again,
    it takes whatever was freed since."""
    written = 0
    chunk = b"\0" * FILL_CHUNK_BYTES
    with open(path, "ab", buffering=0) as file:
        while True:
            try:
                written += file.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                return written  # a short write came first: the disk is full to the page
