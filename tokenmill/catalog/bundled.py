"""The models that ship inside PyPI packages, so a fresh install serves without any hub.

Which models these are, and where each package keeps its files, is data in the family files
(``families/*.toml``): ``source = {package, resource}`` names a file inside a package, and
``source = {call = "module:function"}`` names a function that returns the path (a package that
assembles its file on first use, or one that ships a whole directory).
"""

from __future__ import annotations

import fcntl
import importlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from tokenmill.catalog.card import ModelCard, family_models
from tokenmill.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class BundledModel:
    id: str
    task: str
    engine: str
    context_tokens: int
    card: ModelCard
    source: tuple[tuple[str, str], ...]
    aliases: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        source = dict(self.source)
        return source.get("package") or source["call"].split(":", 1)[0]

    def path(self) -> Path:
        """The model's file or directory; raises if its package is missing."""
        return _locate(self.id, self.source)


@cache
def _locate(model_id: str, source: tuple[tuple[str, str], ...]) -> Path:
    spec = dict(source)
    try:
        if "call" in spec:
            module_name, function = spec["call"].split(":", 1)
            locate = getattr(importlib.import_module(module_name), function)
            path = Path(str(_one_process_at_a_time(model_id, locate)))
        else:
            path = Path(str(resources.files(spec["package"]) / spec["resource"]))
    except ModuleNotFoundError as error:
        raise ModelNotFound(
            f"Model '{model_id}' needs the package '{error.name}', which is not installed."
        ) from None
    if not path.exists():
        raise ModelNotFound(f"Model files for '{model_id}' are missing at {path}.")
    return path


def _one_process_at_a_time(model_id: str, call: Callable[[], object]) -> object:
    """Runs a package's locate call under a file lock: some unpack their weights into a cache
    on first use, and a second process reading the half-written file refuses it."""
    lock_path = Path(tempfile.gettempdir()) / f"tokenmill-locate-{model_id}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return call()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _bundled() -> dict[str, BundledModel]:
    return {
        m.id: BundledModel(
            id=m.id,
            task=m.task,
            engine=m.engine,
            context_tokens=m.card.context_tokens or 2048,
            card=m.card,
            source=tuple(sorted(m.source.items())),
            aliases=m.aliases,
        )
        for m in family_models().values()
        if m.source
    }


BUNDLED: dict[str, BundledModel] = _bundled()


def bundled_model(model_id: str) -> BundledModel:
    try:
        return BUNDLED[model_id]
    except KeyError:
        known = ", ".join(sorted(BUNDLED))
        raise ModelNotFound(f"No bundled model named '{model_id}' (bundled: {known}).") from None
