"""Processes a benchmark starts, and stops for certain: escalating signals, then whatever
of their trees is left behind is found (by pid and start time, so a reused pid is never hit)
and killed. Shared by ``bench/soak.py`` and ``bench/chaos.py``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

from bench import soak_probe as probe

# (signal, seconds to wait for the process to end after it)
GENTLE = ((signal.SIGINT, 60.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0))
FIRM = ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0))
LEFTOVER_GRACE_SECONDS = 15.0  # children get SIGTERM when their parent dies: a moment for it


def remember_tree(root: int, seen: dict[int, int]) -> list[probe.Proc]:
    """``root``'s tree now; each member's pid and start time added to ``seen``."""
    tree = probe.process_tree(root)
    seen.update((proc.pid, proc.start_ticks) for proc in tree)
    return tree


def stop(
    process: subprocess.Popen[bytes], steps: tuple[tuple[int, float], ...] = GENTLE
) -> tuple[str, float]:
    """Sends each signal in turn until the process ends; the last signal sent ("had exited"
    if none was) and how long it took."""
    began = time.monotonic()
    how = "had exited"
    for signum, grace in steps:
        if process.poll() is not None:
            break
        how = signal.Signals(signum).name
        process.send_signal(signum)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            continue
    return how, time.monotonic() - began


def kill_left_behind(
    seen: dict[int, int], grace_seconds: float = LEFTOVER_GRACE_SECONDS
) -> list[dict[str, Any]]:
    """Waits up to ``grace_seconds`` for the processes ``seen`` to end, then SIGKILLs the
    ones still running; they are returned (pid and command line)."""
    deadline = time.monotonic() + grace_seconds
    while (left := [p for p, t in seen.items() if probe.alive(p, t)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    left_behind = []
    for pid in left:
        proc = probe.read_proc(pid)
        left_behind.append({"pid": pid, "cmdline": " ".join(proc.cmdline) if proc else "?"})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left_behind
