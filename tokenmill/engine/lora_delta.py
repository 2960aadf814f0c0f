"""LoRA deltas added per row: many adapters' ``x @ A^T @ B^T`` over one batch, with numpy.

A decode that mixes adapters computes every base weight's product once for all its rows;
``RowPlan.add`` then adds, to each row of that product, the delta of the row's adapter (rows
of base-model sequences get nothing). Rows of one adapter are adjacent (the runner orders
its batch so), which makes each adapter's rows a slice. Short slices (decoding streams) are
multiplied together (``np.matmul`` over a stack of the adapters' matrices, one call per side),
long ones (prompt chunks) one at a time. The stacks, 4 bytes a parameter of every adapter in
the decode, are read from memory once per step: that bandwidth, not the arithmetic, is most of
what mixing costs.

An adapter's matrices come from its GGUF file (``read_lora``) as llama.cpp reads them
(``tokenmill.tuning.export`` writes them): A ``[rank, in]`` and B ``[out, rank]`` as numpy
shapes, the delta scaled by ``alpha / rank`` (1 without alpha), which is folded into B here.
No kernels, no llama.cpp.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
PAD_WASTE = 2.0  # multiply padded stacks while they hold at most this many rows per real one
LONG_RUN = 4  # rows of one adapter in a row beyond this are multiplied on their own
STACKS_KEPT = 2  # adapter combinations whose stacked matrices are kept


@dataclass(eq=False, slots=True)
class LoraWeights:
    """One adapter: per base weight name, ``A^T`` ``[in, rank]`` and scaled ``B^T``
    ``[rank, out]``, both contiguous float32."""

    pairs: dict[str, tuple[Matrix, Matrix]]

    @property
    def rank(self) -> int:
        return max((a.shape[1] for a, _ in self.pairs.values()), default=0)


def read_lora(path: Path, shapes: Mapping[str, tuple[int, int]]) -> LoraWeights:
    """The adapter in ``path``, checked against the base weights' ``(in, out)`` ``shapes``;
    ValueError for a weight the base has not or a pair that does not fit it."""
    reader = gguf.GGUFReader(path)
    alpha_field = reader.fields.get(gguf.Keys.Adapter.LORA_ALPHA)
    alpha = float(alpha_field.contents()) if alpha_field is not None else 0.0
    tensors = {t.name: t for t in reader.tensors}
    pairs: dict[str, tuple[Matrix, Matrix]] = {}
    for name in sorted(tensors):
        if not name.endswith(".lora_a"):
            continue
        target = name.removesuffix(".lora_a")
        if target not in shapes or f"{target}.lora_b" not in tensors:
            raise ValueError(f"{name}: no base weight {target} or no .lora_b beside it")
        a, b = _matrix(tensors[name]), _matrix(tensors[f"{target}.lora_b"])
        n_in, n_out = shapes[target]
        rank = b.shape[1]
        if a.shape != (rank, n_in) or b.shape != (n_out, rank):
            raise ValueError(f"{target}: A {a.shape} and B {b.shape} do not fit ({n_in}, {n_out})")
        scale = alpha / rank if alpha else 1.0
        pairs[target] = (np.ascontiguousarray(a.T), np.ascontiguousarray(b.T * np.float32(scale)))
    if len(pairs) * 2 != len(tensors):
        raise ValueError("the file holds tensors that are not LoRA pairs")
    return LoraWeights(pairs)


def _matrix(tensor: gguf.ReaderTensor) -> Matrix:
    shape = tuple(int(n) for n in reversed(tensor.shape))
    if tensor.tensor_type == gguf.GGMLQuantizationType.F32:
        data = np.asarray(tensor.data)
    else:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return np.array(data, dtype=np.float32).reshape(shape)


@dataclass(slots=True)
class _Stacks:
    """Per weight name, the A^T and B^T of a run of adapters stacked (zeros where an adapter
    leaves the weight alone, or has a lower rank)."""

    adapters: tuple[LoraWeights, ...]
    by_name: dict[str, tuple[Matrix, Matrix] | None] = field(default_factory=dict)

    def get(self, name: str) -> tuple[Matrix, Matrix] | None:
        if name not in self.by_name:
            self.by_name[name] = self._build(name)
        return self.by_name[name]

    def _build(self, name: str) -> tuple[Matrix, Matrix] | None:
        pairs = [adapter.pairs.get(name) for adapter in self.adapters]
        present = [pair for pair in pairs if pair is not None]
        if not present:
            return None
        n_in, n_out = present[0][0].shape[0], present[0][1].shape[1]
        rank = max(a.shape[1] for a, _ in present)
        a_stack = np.zeros((len(pairs), n_in, rank), np.float32)
        b_stack = np.zeros((len(pairs), rank, n_out), np.float32)
        for i, pair in enumerate(pairs):
            if pair is not None:
                a, b = pair
                a_stack[i, :, : a.shape[1]] = a
                b_stack[i, : b.shape[0]] = b
        return a_stack, b_stack


class StackCache:
    """The stacks of the last few adapter combinations (a step's mix often repeats)."""

    def __init__(self, kept: int = STACKS_KEPT) -> None:
        self._kept = kept
        self._stacks: OrderedDict[tuple[LoraWeights, ...], _Stacks] = OrderedDict()

    def stacks(self, adapters: tuple[LoraWeights, ...]) -> _Stacks:
        stacks = self._stacks.get(adapters)
        if stacks is None:
            stacks = self._stacks[adapters] = _Stacks(adapters)
            while len(self._stacks) > self._kept:
                self._stacks.popitem(last=False)
        self._stacks.move_to_end(adapters)
        return stacks

    def clear(self) -> None:
        self._stacks.clear()


class RowPlan:
    """How the rows of one product split by adapter, and how their deltas are multiplied.

    Runs of rows longer than ``LONG_RUN`` (prompt chunks) are multiplied on their own; the
    other rows, when at least two adapters have some, are grouped by adapter, padded to the
    largest group and multiplied with the stacked matrices of every adapter in the decode
    (so that a step with a prompt chunk uses the stacks of the steps around it).
    """

    def __init__(self, adapters: Sequence[LoraWeights | None], cache: StackCache) -> None:
        self.rows = len(adapters)
        runs: list[tuple[LoraWeights, int, int]] = []
        start = 0
        for i in range(1, self.rows + 1):
            if i == self.rows or adapters[i] is not adapters[start]:
                adapter = adapters[start]
                if adapter is not None:
                    runs.append((adapter, start, i))
                start = i
        self.any = bool(runs)
        order = list(dict.fromkeys(adapter for adapter, _, _ in runs))
        groups: list[list[int]] = [[] for _ in order]
        self._alone: list[tuple[LoraWeights, int, int]] = []
        for adapter, start, stop in runs:
            if stop - start > LONG_RUN:
                self._alone.append((adapter, start, stop))
            else:
                groups[order.index(adapter)].extend(range(start, stop))
        short = sum(len(group) for group in groups)
        longest = max((len(group) for group in groups), default=0)
        self._stacks: _Stacks | None = None
        if sum(1 for group in groups if group) > 1 and longest * len(groups) <= PAD_WASTE * short:
            self._stacks = cache.stacks(tuple(order))
            self._plan_stacked(groups, longest)
        else:
            self._alone = runs

    def add(self, name: str, x: Matrix, out: Matrix) -> None:
        """``out[t] += x[t] @ A^T @ B^T`` of row ``t``'s adapter, for the weight ``name``."""
        if self._stacks is not None:
            stacked = self._stacks.get(name)
            if stacked is not None:
                self._add_stacked(stacked, x, out)
        for adapter, start, stop in self._alone:
            pair = adapter.pairs.get(name)
            if pair is not None:
                out[start:stop] += (x[start:stop] @ pair[0]) @ pair[1]

    def _plan_stacked(self, groups: list[list[int]], longest: int) -> None:
        rows = [row for group in groups for row in group]
        self._span: tuple[int, int] | None = None
        alike = all(len(group) == longest for group in groups)
        if alike and rows == list(range(rows[0], rows[0] + len(rows))):
            self._span = (rows[0], rows[0] + len(rows))  # adjacent and alike: views only
            return
        take = np.full((len(groups), longest), rows[0], np.intp)  # padding: never added
        src: list[int] = []
        for i, group in enumerate(groups):
            take[i, : len(group)] = group
            src += range(i * longest, i * longest + len(group))
        self._take = take
        self._dst = np.array(rows, np.intp)
        self._src = np.array(src, np.intp)

    def _add_stacked(self, stacked: tuple[Matrix, Matrix], x: Matrix, out: Matrix) -> None:
        a_stack, b_stack = stacked
        if self._span is not None:
            first, last = self._span
            rows = x[first:last].reshape(a_stack.shape[0], -1, x.shape[1])
            delta = np.matmul(np.matmul(rows, a_stack), b_stack)
            out[first:last] += delta.reshape(last - first, -1)
            return
        delta = np.matmul(np.matmul(x[self._take], a_stack), b_stack)
        out[self._dst] += delta.reshape(-1, out.shape[1])[self._src]
