"""The usage journal on disk: each process's slot, its segments, and replaying them.

A slot is a directory under the data directory's ``journal`` that one process holds a lock on
for its life; a segment is ``segment-<n>.jsonl`` in it, one JSON object a line: a request's
start (``"k": "b"``), its progress (``"k": "p"``, tokens streamed so far) or its usage event
(no ``k``). ``replay`` turns what a process left behind into usage events to ingest; the
writer is ``tokenmill.billing.journal``.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from tokenmill.billing.usage import UsageEvent

log = logging.getLogger(__name__)

LOST_CODE = "gateway_restarted"


def open_slot(base: Path) -> tuple[Path, IO[bytes]]:
    """The first journal directory under ``base`` no other process holds, and its lock."""
    base.mkdir(parents=True, exist_ok=True)
    for index in range(1024):
        directory = base / f"slot-{index}"
        directory.mkdir(exist_ok=True)
        lock = open(directory / "lock", "ab")  # noqa: SIM115 (held for the process's life)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return directory, lock
    raise RuntimeError(f"no free journal slot under {base}")


def encode_event(event: UsageEvent) -> bytes:
    # orjson writes the (slotted) dataclass and its aware datetime as they are, quickly.
    return orjson.dumps(event)


def decode_event(record: dict[str, Any]) -> UsageEvent:
    record["created_at"] = datetime.fromisoformat(record["created_at"])
    return UsageEvent(**record)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as file:
        for line in file:
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line at the end of %s", path)  # cut by a crash


def replay(directory: Path, cost_of: Callable[[UsageEvent], int]) -> list[UsageEvent]:
    """Every request the journal's segments know of, as usage events to ingest."""
    ended: dict[str, UsageEvent] = {}
    started: dict[str, dict[str, Any]] = {}
    for path in segments(directory):
        for record in _records(path):
            kind = record.get("k")
            if kind is None:  # a usage event: the only lines without a kind
                event = decode_event(record)
                ended[event.request_id] = event
            elif kind == "b":
                started[record["request_id"]] = record
            elif kind == "p" and record["request_id"] in started:
                begun = started[record["request_id"]]
                begun["completion_tokens"] = record["completion_tokens"]
                begun["prompt_tokens"] = record.get("prompt_tokens", 0)
    for request_id, begun in started.items():
        if request_id in ended:
            continue
        lost = UsageEvent(
            request_id=request_id,
            tenant_id=begun["tenant_id"],
            key_id=begun["key_id"],
            model=begun["model"],
            endpoint=begun["endpoint"],
            stream=begun["stream"],
            prompt_tokens=begun.get("prompt_tokens", 0),
            cached_tokens=0,
            completion_tokens=begun.get("completion_tokens", 0),
            ttft_seconds=None,
            duration_seconds=0.0,
            status="error",
            http_status=502,
            error_code=LOST_CODE,
            created_at=datetime.fromisoformat(begun["created_at"]),
            service_tier=begun.get("service_tier", "default"),
            app_id=begun.get("app_id"),
        )
        ended[request_id] = lost.with_cost(cost_of(lost))
    return list(ended.values())
