"""Many LoRA adapters in one ``llama_decode``: per-token deltas added in llama.cpp's eval callback.

llama.cpp applies one adapter set to every token of a decode. Instead, a decode that mixes
adapters runs on the base model alone, with ``LoraMixer.callback`` as the context's
``cb_eval``: ggml's scheduler asks it about each graph node before computing (``ask``) and,
for the nodes it wants, calls it again once the node is computed, before any later node
reads it. It wants the products of the base weights its adapters cover (``MUL_MAT`` nodes
whose first source is such a weight, known by address) and adds, in place, each row's
adapter delta (``tokenmill.engine.lora_delta``). The rows of a product are the decode's
tokens, or only those whose logits are wanted (llama.cpp drops the others before the last
layer's feed-forward network); ``RowPlan`` per row count says which adapter each row has.

Before it is used, ``survey`` runs one decode with the callback reading every node through
``GgmlLayout`` (which checks tensors against libggml): which weights exist, their shapes,
that products and their inputs are F32 in host memory with a row per token. Any mismatch
leaves the mixer off (``LayoutMismatch``), and the runner decodes adapters one set at a time.
After each mixed decode, every covered weight must have had its delta added exactly once,
or ``finish`` raises: the decode's output is then wrong and must be dropped.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp

from tokenmill.engine.ggml_tensor import (
    OP_OFFSET,
    SRC0_OFFSET,
    TYPE_F32,
    GgmlLayout,
    GgmlTensor,
    LayoutMismatch,
    rows_view,
)
from tokenmill.engine.lora_delta import LoraWeights, Matrix, RowPlan, StackCache

logger = logging.getLogger(__name__)

LAYER_WEIGHT = re.compile(rb"blk\.\d+\.[a-z0-9_]+\.weight")
VIEWS_KEPT = 4096


class MixError(RuntimeError):
    """A mixed decode's deltas were not all added: its output is wrong."""


@dataclass(frozen=True, slots=True, eq=False)
class LoadedAdapter:
    """llama.cpp's adapter, and its matrices for mixed decodes (None: it cannot be mixed)."""

    lora: Any
    weights: LoraWeights | None


class LoraMixer:
    @classmethod
    def create(cls) -> LoraMixer | None:
        """A mixer, or None (logged) when this ggml is not the one it reads."""
        try:
            return cls()
        except (LayoutMismatch, OSError, AttributeError) as error:
            logger.warning("LoRA adapters will not be mixed in one decode: %s", error)
            return None

    def __init__(self) -> None:
        self._layout = GgmlLayout()
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._eval)
        self.shapes: dict[str, tuple[int, int]] = {}  # covered weight -> (in, out)
        self._weights: dict[int, str] = {}  # covered weight's address -> name
        self._plans: dict[int, RowPlan] | None = None  # rows -> plan, during a mixed decode
        self._seen = 0
        self._error: str | None = None
        self._survey: _Survey | None = None
        self._views: dict[tuple[int, ...], Matrix] = {}
        self._stacks = StackCache()

    def survey(self, decode: Callable[[], None], tokens: int) -> None:
        """Learn the covered weights from one decode of ``tokens`` tokens (all with logits);
        LayoutMismatch when the graph is not as expected."""
        self._survey = survey = _Survey(self._layout, tokens)
        try:
            decode()
        finally:
            self._survey = None
        if survey.error is not None:
            raise LayoutMismatch(survey.error)
        covered = dict(survey.shapes)
        for name in survey.gathered:
            covered.pop(name, None)  # also looked up by row (embeddings): not a product only
        if not covered:
            raise LayoutMismatch("the graph multiplies no layer weights")
        self.shapes = covered
        self._weights = {addr: name for addr, name in survey.addresses.items() if name in covered}

    def decode(
        self,
        runs: Sequence[tuple[LoadedAdapter | None, int]],
        n_tokens: int,
        outputs: Sequence[int],
        compute: Callable[[int], None],
    ) -> None:
        """``compute(n_tokens)`` (a llama_decode on the base model) with the deltas of the
        batch's runs of tokens (adapter, count) added; ``outputs``: the rows with logits.
        MixError when a delta was missed or failed."""
        adapters: list[LoraWeights | None] = []
        for adapter, count in runs:
            adapters += [None if adapter is None else adapter.weights] * count
        adapters += [None] * (n_tokens - len(adapters))  # a scratch token
        plans = {n_tokens: RowPlan(adapters, self._stacks)}
        if len(outputs) != n_tokens:  # the last layer's feed-forward rows
            plans[len(outputs)] = RowPlan([adapters[i] for i in outputs], self._stacks)
        self._plans, self._seen, self._error = plans, 0, None
        try:
            compute(n_tokens)
        finally:
            self._plans = None
        if self._error is None and self._seen != len(self._weights):
            self._error = f"{self._seen} of {len(self._weights)} adapted products were seen"
        if self._error is not None:
            raise MixError(f"LoRA deltas not applied: {self._error}")

    def forget(self) -> None:
        """Drop stacked adapter matrices (an adapter was freed)."""
        self._stacks.clear()

    def _eval(self, address: int, ask: bool, _user_data: int | None) -> bool:
        plans = self._plans
        if plans is None:
            survey = self._survey
            return survey is not None and survey.node(address, ask)
        try:
            if ask:
                src0 = ctypes.c_void_p.from_address(address + SRC0_OFFSET).value
                return src0 in self._weights and (
                    ctypes.c_int.from_address(address + OP_OFFSET).value == self._layout.mul_mat
                )
            self._add(address, plans)
        except Exception as error:
            self._error = f"{type(error).__name__}: {error}"
            self._plans = None  # the rest of the decode runs without callbacks
        return True

    def _add(self, address: int, plans: dict[int, RowPlan]) -> None:
        node = GgmlTensor.from_address(address)
        name = self._weights[node.src[0]]
        plan = plans.get(node.ne[1])
        if plan is None:
            raise LayoutMismatch(f"{name}: a product of {node.ne[1]} rows in this decode")
        self._seen += 1
        if plan.any:
            plan.add(name, self._view(GgmlTensor.from_address(node.src[1])), self._view(node))

    def _view(self, tensor: GgmlTensor) -> Matrix:
        key = (tensor.type, tensor.data, *tensor.ne, *tensor.nb)
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= VIEWS_KEPT:
                self._views.clear()
            view = self._views[key] = rows_view(tensor)
        return view


class _Survey:
    """The callback while surveying: every node checked, every layer weight's product read."""

    def __init__(self, layout: GgmlLayout, tokens: int) -> None:
        self.layout = layout
        self.tokens = tokens
        self.shapes: dict[str, tuple[int, int]] = {}
        self.addresses: dict[int, str] = {}
        self.gathered: set[str] = set()
        self.error: str | None = None
        self._get_rows = layout.op_number("GET_ROWS")

    def node(self, address: int, ask: bool) -> bool:
        if self.error is not None:
            return False
        try:
            return self._node(address, ask)
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
            return False

    def _node(self, address: int, ask: bool) -> bool:
        layout = self.layout
        node = layout.check(address)
        if node.op not in (layout.mul_mat, self._get_rows) or not node.src[0]:
            return False
        weight = layout.check(node.src[0])
        if not LAYER_WEIGHT.fullmatch(weight.name):
            return False
        name = weight.name.decode()
        if node.op == self._get_rows:
            self.gathered.add(name)
            return False
        if ask:
            return True
        source = layout.check(node.src[1])
        n_in, n_out = weight.ne[0], weight.ne[1]
        if not (layout.on_host(node) and layout.on_host(source)):
            raise LayoutMismatch(f"{name}: its product is not in host memory")
        if node.type != TYPE_F32 or source.type != TYPE_F32:
            raise LayoutMismatch(f"{name}: its product or input is not F32")
        if (source.ne[0], node.ne[0]) != (n_in, n_out) or node.ne[1] != self.tokens:
            raise LayoutMismatch(f"{name} {list(weight.ne)}: product {list(node.ne)}")
        rows_view(source), rows_view(node)
        if name in self.shapes:
            raise LayoutMismatch(f"{name} is multiplied twice in one graph")
        self.shapes[name] = (n_in, n_out)
        self.addresses[node.src[0]] = name
        return True
