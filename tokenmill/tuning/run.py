"""One training run in its own process, seen from the worker that started it.

The child (``python -m tokenmill.tuning.process spec.json``) trains with a bounded number of
threads at a lower CPU priority than serving, dies with its parent, and reports one JSON
object per line on stdout (``step``, ``checkpoint``, ``done``). The worker steers it through a
control file beside the spec: ``pause`` (checkpoint, then stop) or ``cancel`` (stop now).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tokenmill.fleet.local import die_with_parent

NICENESS = 10  # serving keeps the CPU when both want it
STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    base_gguf: str
    train_path: str
    validation_path: str | None
    out_dir: str
    hyperparameters: dict[str, Any]
    threads: int
    context_tokens: int | None = None  # the longest example trained on (None: no limit)

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def read_spec(path: Path) -> RunSpec:
    return RunSpec(**json.loads(path.read_text()))


def control_path(out_dir: Path) -> Path:
    return out_dir / "control"


def _start_child() -> None:
    os.nice(NICENESS)
    if sys.platform == "linux":
        die_with_parent()


class TrainerRun:
    def __init__(self, spec: RunSpec, log_path: Path) -> None:
        out_dir = Path(spec.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._control = control_path(out_dir)
        self._control.unlink(missing_ok=True)
        spec_path = out_dir / "spec.json"
        spec_path.write_text(json.dumps(spec.as_json()))
        threads = str(spec.threads)
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": threads,
            # Idle OpenMP threads sleep rather than spin: beside a busy replica, spinning
            # made a step 15-40x slower.
            "OMP_WAIT_POLICY": "PASSIVE",
            "MKL_NUM_THREADS": threads,
            "TOKENIZERS_PARALLELISM": "false",
        }
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tokenmill.tuning.process", str(spec_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                preexec_fn=_start_child,
            )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="trainer-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict):
                self._lines.put(message)
        self._lines.put(None)

    def messages(self, poll_seconds: float = 1.0) -> Iterator[dict[str, Any] | None]:
        """The child's messages as they come; None each ``poll_seconds`` without one (so the
        caller can look at its job), ending when the child's output ends."""
        while True:
            try:
                message = self._lines.get(timeout=poll_seconds)
            except queue.Empty:
                yield None
                continue
            if message is None:
                return
            yield message

    def ask(self, what: str) -> None:
        """``pause`` or ``cancel``: the child reads it before its next step."""
        tmp = self._control.with_suffix(".tmp")
        tmp.write_text(what)
        tmp.replace(self._control)

    def stop(self) -> int:
        """Cancels the run and waits for the child (killing it after a grace period)."""
        if self.process.poll() is None:
            self.ask("cancel")
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def wait(self) -> int:
        return self.process.wait()
