from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tokenmill.fleet.inventory import (
    CPU_KIND,
    GIB,
    KNOWN_ACCELERATOR_KINDS,
    Accelerator,
    Inventory,
    Node,
    accelerator_kind_from_name,
    detect_local_node,
)


def test_uniform_node_takes_memory_from_the_kind_table() -> None:
    node = Node.uniform("n1", "us", "H100-80GB", 8)
    assert [a.id for a in node.accelerators] == [f"n1/{i}" for i in range(8)]
    assert {a.memory_bytes for a in node.accelerators} == {80 * GIB}
    with pytest.raises(ValueError, match="unknown accelerator kind"):
        Node.uniform("n2", "us", "TPU-v9", 1)


def test_inventory_lookups() -> None:
    inventory = Inventory(
        (Node.uniform("a", "us", "L4", 2), Node.uniform("b", "eu", "A100-40GB", 4))
    )
    assert len(inventory) == 6
    assert inventory.node("b").region == "eu"
    assert inventory.node_of("b/3").id == "b"
    assert inventory.accelerator("a/1").kind == "L4"
    assert inventory.kinds() == {"L4", "A100-40GB"}
    assert inventory.regions() == {"us", "eu"}
    assert [a.id for _, a in inventory.accelerators()][:3] == ["a/0", "a/1", "b/0"]
    with pytest.raises(KeyError):
        inventory.node("c")


def test_inventory_rejects_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="node id"):
        Inventory((Node.uniform("a", "us", "L4", 1), Node.uniform("a", "us", "L4", 1)))
    clash = Node("b", "us", (Accelerator("a/0", "L4", GIB),), 8, 8 * GIB)
    with pytest.raises(ValueError, match="accelerator id"):
        Inventory((Node.uniform("a", "us", "L4", 1), clash))


def test_kind_table_is_complete_and_consistent() -> None:
    assert set(KNOWN_ACCELERATOR_KINDS) == {
        "H100-80GB", "A100-80GB", "A100-40GB", "L4", "L40S", "A10G"
    }  # fmt: skip
    h100, a100 = KNOWN_ACCELERATOR_KINDS["H100-80GB"], KNOWN_ACCELERATOR_KINDS["A100-80GB"]
    assert h100.memory_bytes == a100.memory_bytes == 80 * GIB
    assert h100.memory_bandwidth_gb_per_second > a100.memory_bandwidth_gb_per_second
    assert h100.bf16_dense_tflops > a100.bf16_dense_tflops
    assert KNOWN_ACCELERATOR_KINDS["L4"].memory_bytes == 24 * GIB


@pytest.mark.parametrize(
    ("name", "memory_gib", "kind"),
    [
        ("NVIDIA H100 80GB HBM3", 79.6, "H100-80GB"),
        ("NVIDIA A100-SXM4-40GB", 39.4, "A100-40GB"),
        ("NVIDIA A100-SXM4-80GB", 80, "A100-80GB"),
        ("NVIDIA L4", 22.5, "L4"),
        ("NVIDIA L40S", 45, "L40S"),
        ("NVIDIA A10G", 22, "A10G"),
        ("Tesla T4", 15, "Tesla T4"),
    ],
)
def test_kind_from_nvml_name(name: str, memory_gib: float, kind: str) -> None:
    assert accelerator_kind_from_name(name, int(memory_gib * GIB)) == kind


@pytest.fixture
def meminfo(tmp_path: Path) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(
        "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n"
    )
    return path


def test_detect_local_node_without_gpus(meminfo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    node = detect_local_node("here", "lab", meminfo_path=meminfo)
    assert (node.id, node.region) == ("here", "lab")
    assert node.cpu_cores >= 1
    assert node.memory_bytes == 16384000 * 1024
    assert node.accelerators == (Accelerator("here/cpu", CPU_KIND, 8192000 * 1024),)


def test_detect_local_node_reads_the_real_machine() -> None:
    node = detect_local_node()
    assert node.memory_bytes > 0
    assert node.accelerators
    assert all(a.memory_bytes > 0 for a in node.accelerators)


def _fake_nvml(devices: list[tuple[str | bytes, int]]) -> Any:
    module: Any = types.ModuleType("pynvml")
    shut: list[bool] = []
    module.nvmlInit = lambda: None
    module.nvmlShutdown = lambda: shut.append(True)
    module.nvmlDeviceGetCount = lambda: len(devices)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda handle: devices[handle][0]
    module.nvmlDeviceGetMemoryInfo = lambda handle: types.SimpleNamespace(total=devices[handle][1])
    module.shut = shut
    return module


def test_detect_local_node_with_nvml(meminfo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml([("NVIDIA H100 80GB HBM3", 81559 << 20), (b"NVIDIA L4", 23034 << 20)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    node = detect_local_node("g", meminfo_path=meminfo)
    assert [(a.id, a.kind, a.memory_bytes) for a in node.accelerators] == [
        ("g/gpu0", "H100-80GB", 81559 << 20),
        ("g/gpu1", "L4", 23034 << 20),
    ]
    assert fake.shut == [True]
    with_cpu = detect_local_node("g", include_cpu=True, meminfo_path=meminfo)
    assert [a.kind for a in with_cpu.accelerators] == [CPU_KIND, "H100-80GB", "L4"]


def test_detect_local_node_survives_a_broken_driver(
    meminfo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_nvml([])

    def no_driver() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    fake.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    node = detect_local_node(meminfo_path=meminfo)
    assert [a.kind for a in node.accelerators] == [CPU_KIND]
