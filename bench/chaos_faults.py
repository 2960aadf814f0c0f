"""The faults the chaos benchmark injects, one function each, in the order they run.

A fault breaks something, keeps it broken as long as it lasts (the load goes on meanwhile,
on its own thread), puts back what a service manager or an operator would (a killed gateway
or controller is started again; Redis and the disk come back), and returns what it did:
``held_seconds`` (from the break to the repair) and details worth reading afterwards.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import chaos_services as services
from bench.chaos_cluster import Cluster

RESTART_AFTER_SECONDS = 2.0  # a killed gateway or controller, as systemd's RestartSec
LEADER_WAIT_SECONDS = 60.0
REFILL_SECONDS = 0.2  # the disk stays full: whatever is freed is taken again this soon


@dataclass(slots=True)
class Setting:
    """What the faults act on."""

    cluster: Cluster
    journal_dir: Path
    redis: dict[str, str]  # the running Redis's settings, to start it with again
    redis_down_seconds: float
    disk_full_seconds: float


def wait_for_leader(cluster: Cluster, seconds: float = LEADER_WAIT_SECONDS) -> str | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        leader = cluster.leader()
        if leader is not None:
            return leader
        time.sleep(0.25)
    return None


def kill_gateway(setting: Setting) -> dict[str, Any]:
    cluster = setting.cluster
    pid = cluster.kill("gateway-1")
    time.sleep(RESTART_AFTER_SECONDS)
    cluster.start("gateway-1")
    return {"held_seconds": RESTART_AFTER_SECONDS, "killed_pid": pid}


def kill_replica(setting: Setting) -> dict[str, Any]:
    cluster = setting.cluster
    leader = wait_for_leader(cluster)
    replicas = cluster.replicas(leader) if leader else []
    if not replicas:
        return {"held_seconds": 0.0, "skipped": f"no replica under the leader ({leader})"}
    victim = replicas[0]
    cluster.remember()
    os.kill(victim.pid, signal.SIGKILL)
    return {"held_seconds": 0.0, "leader": leader, "killed_pid": victim.pid}


def kill_leader(setting: Setting) -> dict[str, Any]:
    cluster = setting.cluster
    leader = wait_for_leader(cluster)
    if leader is None:
        return {"held_seconds": 0.0, "skipped": "no controller leads"}
    killed_at = time.monotonic()
    pid = cluster.kill(leader)
    time.sleep(RESTART_AFTER_SECONDS)
    cluster.start(leader)  # back as a standby, as a service manager would start it
    successor = wait_for_leader(cluster)
    took_over = time.monotonic() - killed_at
    replica_up = None
    if successor is not None:
        deadline = time.monotonic() + LEADER_WAIT_SECONDS * 3
        while time.monotonic() < deadline and not cluster.replicas(successor):
            time.sleep(0.25)
        replica_up = round(time.monotonic() - killed_at, 2) if cluster.replicas(successor) else None
    return {
        "held_seconds": RESTART_AFTER_SECONDS,
        "killed": leader,
        "killed_pid": pid,
        "new_leader": successor,
        "leader_after_seconds": round(took_over, 2),
        "replica_process_after_seconds": replica_up,
    }


def restart_postgres(setting: Setting) -> dict[str, Any]:
    done = services.restart_postgres()
    return {"held_seconds": done["seconds"], **done}


def stop_redis(setting: Setting) -> dict[str, Any]:
    began = time.monotonic()
    stopped = services.stop_redis()
    time.sleep(max(0.0, setting.redis_down_seconds - (time.monotonic() - began)))
    started = services.start_redis(setting.redis)
    return {"held_seconds": round(time.monotonic() - began, 2), "stop": stopped, "start": started}


def journal_files(journal_dir: Path) -> dict[str, dict[str, float]]:
    """Each journal segment's size and age (seconds since it was last written)."""
    now = time.time()
    files = {}
    for path in sorted(journal_dir.glob("slot-*/segment-*.jsonl")):
        stat = path.stat()
        files[str(path.relative_to(journal_dir))] = {
            "bytes": stat.st_size,
            "written_seconds_ago": round(now - stat.st_mtime, 1),
        }
    return files


def fill_journal_disk(setting: Setting) -> dict[str, Any]:
    filler = setting.journal_dir / "filler"
    began = time.monotonic()
    written = services.fill(filler)
    while time.monotonic() - began < setting.disk_full_seconds:
        time.sleep(REFILL_SECONDS)
        written += services.fill(filler)  # what a journal freed (a segment it gave up) too
    during = journal_files(setting.journal_dir)
    filler.unlink()
    held = time.monotonic() - began
    time.sleep(10)  # then: do the journals write again?
    return {
        "held_seconds": round(held, 2),
        "filler_bytes": written,
        "segments_at_end_of_fault": during,
        "segments_10_s_after": journal_files(setting.journal_dir),
    }


FAULTS: tuple[tuple[str, Callable[[Setting], dict[str, Any]]], ...] = (
    ("kill -9 a gateway", kill_gateway),
    ("kill -9 the replica", kill_replica),
    ("kill -9 the leading controller", kill_leader),
    ("restart PostgreSQL", restart_postgres),
    ("stop Redis", stop_redis),
    ("fill the journal's disk", fill_journal_disk),
)
