"""LoRA adapters served beside the base model: which one a request names, and which are loaded.

A request names an adapter by id in ``ADAPTER_HEADER``; the adapter is the file
``<directory>/<id>.gguf`` (an id has no path separators, so it never names a file elsewhere),
loaded on first use. Loaded adapters are kept least recently used first, at most ``capacity``
of them, except that an adapter pinned by a request (from submission until it ends, waiting or
running) is never evicted: while more than ``capacity`` are in use, all of them stay loaded.

Loading goes through the ``load`` function given (the runner's), on whatever thread asks; an
evicted adapter is not freed here but handed to the engine's worker thread (``drain``), the
only thread that may free it, since llama.cpp's context may still point at it.
No kernels: the handles are opaque.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenmill.errors import InvalidArtifact, InvalidRequest, ModelNotFound
from tokenmill.protocol.tenancy import ADAPTER_HEADER

ADAPTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DEFAULT_CAPACITY = 8


def parse_adapter(headers: Mapping[str, str]) -> str | None:
    """The adapter a request names, or None for the base model; 400 for a malformed id."""
    raw = headers.get(ADAPTER_HEADER, "")
    if not raw:
        return None
    if not ADAPTER_ID.fullmatch(raw):
        raise InvalidRequest(
            f"'{ADAPTER_HEADER}' must be 1 to 128 letters, digits or '.', '_', '-', "
            "starting with a letter or digit.",
            param=ADAPTER_HEADER,
        )
    return raw


@dataclass(slots=True)
class _Loaded:
    handle: Any
    pins: int = 0


class AdapterCache:
    """The loaded adapters, least recently used first, and how many requests use each."""

    def __init__(
        self,
        directory: Path | None,
        load: Callable[[Path], Any],
        *,
        capacity: int = DEFAULT_CAPACITY,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        """``load``: a file's handle, or ValueError when the file cannot be served."""
        if capacity < 1:
            raise ValueError("an adapter cache holds at least one adapter")
        self.directory = directory
        self.capacity = capacity
        self._load = load
        self._on_load = on_load
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._evicted: list[Any] = []
        self._lock = threading.Lock()  # the state above
        self._loading = threading.Lock()  # one load at a time: never the same file twice

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def loaded(self) -> list[str]:
        """The ids of the loaded adapters, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded)

    def pin(self, adapter: str) -> None:
        """Load ``adapter`` if need be and keep it loaded until ``unpin``.

        404 when there is no such adapter, 400 when llama.cpp refuses its file.
        """
        if self._pin_loaded(adapter):
            return
        with self._loading:
            if self._pin_loaded(adapter):
                return
            path = self.path(adapter)
            try:
                handle = self._load(path)
            except ValueError as error:
                raise InvalidArtifact(
                    f"The adapter {adapter!r} cannot be served with this model: {error}",
                    param=ADAPTER_HEADER,
                ) from None
            if self._on_load is not None:
                self._on_load()
            with self._lock:
                self._loaded[adapter] = _Loaded(handle, pins=1)
                self._shrink()

    def unpin(self, adapter: str) -> None:
        with self._lock:
            entry = self._loaded.get(adapter)
            if entry is None or entry.pins <= 0:
                raise RuntimeError(f"unpin({adapter!r}) without pin()")
            entry.pins -= 1
            self._shrink()

    def handle(self, adapter: str) -> Any:
        """The handle of a pinned adapter."""
        with self._lock:
            return self._loaded[adapter].handle

    def drain(self) -> list[Any]:
        """The handles evicted since the last call, for the worker thread to free."""
        with self._lock:
            evicted, self._evicted = self._evicted, []
            return evicted

    def clear(self) -> list[Any]:
        """Forget every adapter nobody uses (the engine stops); returns the handles to free."""
        with self._lock:
            for adapter in [a for a, entry in self._loaded.items() if entry.pins == 0]:
                self._evicted.append(self._loaded.pop(adapter).handle)
            evicted, self._evicted = self._evicted, []
            return evicted

    def path(self, adapter: str) -> Path:
        """The file of ``adapter``; 404 when there is none."""
        if not ADAPTER_ID.fullmatch(adapter):  # callers parse ids; never build a path from one
            raise InvalidRequest(f"{adapter!r} is not an adapter id.", param=ADAPTER_HEADER)
        if self.directory is None:
            raise ModelNotFound(
                f"The adapter {adapter!r} is not served here: this replica serves no adapters.",
                param=ADAPTER_HEADER,
            )
        path = self.directory / f"{adapter}.gguf"
        if not path.is_file():
            raise ModelNotFound(
                f"The adapter {adapter!r} does not exist on this replica.", param=ADAPTER_HEADER
            )
        return path

    def _pin_loaded(self, adapter: str) -> bool:
        with self._lock:
            entry = self._loaded.get(adapter)
            if entry is None:
                return False
            entry.pins += 1
            self._loaded.move_to_end(adapter)
            return True

    def _shrink(self) -> None:
        """Evict unused adapters, least recently used first, down to the capacity."""
        excess = len(self._loaded) - self.capacity
        if excess <= 0:
            return
        for adapter in [a for a, entry in self._loaded.items() if entry.pins == 0][:excess]:
            self._evicted.append(self._loaded.pop(adapter).handle)
