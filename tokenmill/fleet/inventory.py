"""Nodes and accelerators: what the fleet can place replicas on.

Values only: an ``Inventory`` is a snapshot that placement reads and the simulator builds by
hand. ``detect_local_node`` is the one function here that looks at the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1 << 30

CPU_KIND = "cpu"


@dataclass(frozen=True, slots=True)
class AcceleratorKind:
    """Datasheet figures of one accelerator model; the simulator's cost model reads them."""

    name: str
    memory_bytes: int
    memory_bandwidth_gb_per_second: float
    bf16_dense_tflops: float


# Nominal memory as marketed ("80GB" is 80 GiB of HBM). Bandwidth and dense BF16 tensor
# throughput (the datasheets print sparse figures with an asterisk; dense is half) from:
# - H100-80GB: NVIDIA H100 Tensor Core GPU datasheet, SXM column: 3.35 TB/s, BF16 1,979* TFLOPS.
# - A100-80GB: NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM column: 2,039 GB/s, BF16 312 TFLOPS.
# - A100-40GB: same datasheet, 40GB column: 1,555 GB/s, BF16 312 TFLOPS.
# - L4: NVIDIA L4 Tensor Core GPU datasheet: 24GB GDDR6, 300 GB/s, BF16 242* TFLOPS.
# - L40S: NVIDIA L40S datasheet: 48GB GDDR6, 864 GB/s, BF16 362.05 (733*) TFLOPS.
# - A10G: AWS's variant of the A10 has no NVIDIA datasheet; figures are the NVIDIA A10
#   datasheet's (24GB GDDR6, 600 GB/s, BF16 125 TFLOPS). The A10G clocks lower, so treat its
#   compute figure as an upper bound.
KNOWN_ACCELERATOR_KINDS: Mapping[str, AcceleratorKind] = {
    kind.name: kind
    for kind in (
        AcceleratorKind("H100-80GB", 80 * GIB, 3350.0, 989.0),
        AcceleratorKind("A100-80GB", 80 * GIB, 2039.0, 312.0),
        AcceleratorKind("A100-40GB", 40 * GIB, 1555.0, 312.0),
        AcceleratorKind("L4", 24 * GIB, 300.0, 121.0),
        AcceleratorKind("L40S", 48 * GIB, 864.0, 362.0),
        AcceleratorKind("A10G", 24 * GIB, 600.0, 125.0),
    )
}


@dataclass(frozen=True, slots=True)
class Accelerator:
    """One device a replica can occupy; ``id`` is unique across the inventory."""

    id: str
    kind: str
    memory_bytes: int

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError(f"accelerator {self.id!r} needs a positive memory size")


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    region: str
    accelerators: tuple[Accelerator, ...]
    cpu_cores: int
    memory_bytes: int
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def uniform(
        cls,
        node_id: str,
        region: str,
        kind: str,
        count: int,
        *,
        cpu_cores: int = 64,
        memory_bytes: int = 512 * GIB,
        labels: Mapping[str, str] | None = None,
    ) -> Node:
        """A node of ``count`` accelerators of one known kind, ids ``<node_id>/<index>``."""
        known = KNOWN_ACCELERATOR_KINDS.get(kind)
        if known is None:
            raise ValueError(f"unknown accelerator kind {kind!r}; give its memory explicitly")
        accelerators = tuple(
            Accelerator(f"{node_id}/{index}", kind, known.memory_bytes) for index in range(count)
        )
        return cls(node_id, region, accelerators, cpu_cores, memory_bytes, dict(labels or {}))


@dataclass(frozen=True, slots=True)
class Inventory:
    """All nodes, with lookups by node and accelerator id (built once, O(1) after)."""

    nodes: tuple[Node, ...]
    _nodes_by_id: dict[str, Node] = field(init=False, repr=False, compare=False, hash=False)
    _node_of_accelerator: dict[str, Node] = field(init=False, repr=False, compare=False, hash=False)
    _accelerators_by_id: dict[str, Accelerator] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        nodes_by_id: dict[str, Node] = {}
        node_of: dict[str, Node] = {}
        accelerators: dict[str, Accelerator] = {}
        for node in self.nodes:
            if node.id in nodes_by_id:
                raise ValueError(f"node id {node.id!r} appears twice")
            nodes_by_id[node.id] = node
            for accelerator in node.accelerators:
                if accelerator.id in accelerators:
                    raise ValueError(f"accelerator id {accelerator.id!r} appears twice")
                accelerators[accelerator.id] = accelerator
                node_of[accelerator.id] = node
        object.__setattr__(self, "_nodes_by_id", nodes_by_id)
        object.__setattr__(self, "_node_of_accelerator", node_of)
        object.__setattr__(self, "_accelerators_by_id", accelerators)

    def node(self, node_id: str) -> Node:
        """The node with this id; ``KeyError`` if there is none."""
        return self._nodes_by_id[node_id]

    def accelerator(self, accelerator_id: str) -> Accelerator:
        return self._accelerators_by_id[accelerator_id]

    def node_of(self, accelerator_id: str) -> Node:
        return self._node_of_accelerator[accelerator_id]

    def accelerators(self) -> Iterator[tuple[Node, Accelerator]]:
        for node in self.nodes:
            for accelerator in node.accelerators:
                yield node, accelerator

    def __len__(self) -> int:
        """The number of accelerators."""
        return len(self._accelerators_by_id)

    def kinds(self) -> frozenset[str]:
        return frozenset(a.kind for a in self._accelerators_by_id.values())

    def regions(self) -> frozenset[str]:
        return frozenset(node.region for node in self.nodes)


def _meminfo_bytes(meminfo_path: Path) -> dict[str, int]:
    """``/proc/meminfo`` fields in bytes (the file prints kB, meaning KiB)."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in meminfo_path.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
                values[name.strip()] = int(parts[0]) * scale
    return values


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_GPU_NAME = re.compile(r"(H100|A100|L40S|L4|A10G)\b", re.IGNORECASE)


def accelerator_kind_from_name(device_name: str, memory_bytes: int) -> str:
    """Our kind name for an NVML device name, e.g. "NVIDIA H100 80GB HBM3" -> "H100-80GB".

    Families with several memory sizes get the size rounded to the nearest marketed GiB;
    unknown devices keep their NVML name.
    """
    match = _GPU_NAME.search(device_name)
    if match is None:
        return device_name
    family = match.group(1).upper()
    if family in ("H100", "A100"):
        return f"{family}-{round(memory_bytes / GIB / 40) * 40}GB"
    return family


def _nvml_accelerators(node_id: str) -> list[Accelerator]:
    """NVIDIA GPUs through NVML; empty when the library or a driver is absent."""
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return []
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return []
    try:
        found: list[Accelerator] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):  # older pynvml returns bytes
                name = name.decode()
            total = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            found.append(
                Accelerator(f"{node_id}/gpu{index}", accelerator_kind_from_name(name, total), total)
            )
        return found
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def detect_local_node(
    node_id: str = "local",
    region: str = "local",
    *,
    include_cpu: bool | None = None,
    meminfo_path: Path = Path("/proc/meminfo"),
) -> Node:
    """This machine as a node.

    NVIDIA GPUs come from NVML when ``pynvml`` imports and a driver answers. The host itself is
    one accelerator of kind ``"cpu"`` whose memory is what ``MemAvailable`` says now (other
    programs' memory is not ours to place into; call this before starting replicas), falling
    back to ``MemTotal``. ``include_cpu=None`` adds the cpu accelerator only when no GPU was
    found, so a request without a kind constraint does not land on the CPU of a GPU node.
    """
    meminfo = _meminfo_bytes(meminfo_path)
    total = meminfo.get("MemTotal", 0)
    available = meminfo.get("MemAvailable", total)
    if total <= 0:  # not Linux, or /proc not mounted
        total = available = 1 * GIB
    accelerators = _nvml_accelerators(node_id)
    if include_cpu or (include_cpu is None and not accelerators):
        accelerators.insert(0, Accelerator(f"{node_id}/cpu", CPU_KIND, max(available, 1)))
    return Node(node_id, region, tuple(accelerators), _cpu_cores(), total)
