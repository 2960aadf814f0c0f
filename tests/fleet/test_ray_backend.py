"""The ``ray`` fleet backend on a real two-node Ray cluster running on this machine.

The cluster is ``ray.cluster_utils.Cluster`` in this process: a head with one CPU and a second
node declaring two H100s (bookkeeping only, as ``ray start --num-gpus`` would). Both nodes use
node IP 127.0.0.1, and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray from replacing that
with the machine's outward address: then every Ray socket listens on loopback only, which
``ray start`` cannot do for a second node (it refuses to start one in that mode). The cluster
files live in a temporary directory of their own (``RAY_TMPDIR``, ``temp_dir``), so nothing is
shared with other Ray users on the machine. Without Ray, or when the cluster cannot start, the
tests skip, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fleet.engines import standin
from tokenmill.catalog.bundled import bundled_model
from tokenmill.fleet.engines import adapter_for
from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.engines.llama_server import LlamaServerAdapter
from tokenmill.fleet.inventory import GIB, Inventory
from tokenmill.fleet.placement import Assignment, PlacementRequest, place
from tokenmill.fleet.ray_backend import RayBackend, RayReplica


@dataclass
class RayCluster:
    backend: RayBackend
    inventory: Inventory
    cpu_node: str
    gpu_node: str
    log_dir: Path


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    root = tempfile.mkdtemp(prefix="tmray-")  # short: Ray's unix socket paths live under it
    (Path(root) / "ray").mkdir()  # where Cluster writes its address file (RAY_TMPDIR/ray)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        env.setenv("RAY_NODE_IP_ADDRESS", "127.0.0.1")
        env.setenv("RAY_TMPDIR", root)
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray._private.ray_constants as ray_constants
            from ray.cluster_utils import Cluster
        except ImportError as error:
            _unavailable(f"ray is not installed: {error}")
        # Read once at import; set it too in case ray was imported before the variable.
        env.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        cluster: Any = None
        backend: RayBackend | None = None
        try:
            started = time.monotonic()
            cluster = Cluster(
                initialize_head=True,
                head_node_args={"node_ip_address": "127.0.0.1", "num_cpus": 1,
                                "include_dashboard": False, "temp_dir": root},
            )  # fmt: skip
            cluster.add_node(node_ip_address="127.0.0.1", num_cpus=1, num_gpus=2,
                             resources={"accelerator_type:H100": 2})  # fmt: skip
            backend = RayBackend(cluster.address, Path(root) / "logs")
            print(f"two-node Ray cluster up in {time.monotonic() - started:.1f} s")
            inventory = backend.inventory()
            gpu = next(n.id for n in inventory.nodes if n.accelerators[0].kind != "cpu")
            cpu = next(n.id for n in inventory.nodes if n.accelerators[0].kind == "cpu")
            yield RayCluster(backend, inventory, cpu, gpu, Path(root) / "logs")
        except Exception as error:
            if backend is None:
                _unavailable(f"cannot start a Ray cluster: {error!r}")
            raise
        finally:
            if backend is not None:
                backend.close()
            if cluster is not None:
                cluster.shutdown()
            shutil.rmtree(root, ignore_errors=True)


def _placed(cluster: RayCluster, kind: str, accelerators: int = 1) -> Assignment:
    request = PlacementRequest(
        deployment_id="dep_ray",
        replica_id=f"rep_{kind.lower()}_{time.monotonic_ns()}",
        memory_bytes=1 * GIB,
        accelerators=accelerators,
        accelerator_kind=kind,
    )
    return place(cluster.inventory, [], request)


def _wait_healthy(replica: RayReplica, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        assert replica.alive(), f"replica died; log: {_log(replica)}"
        try:
            if httpx.get(f"{replica.url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"replica at {replica.url} not healthy in {timeout_seconds} s: {_log(replica)}")


def _log(replica: RayReplica) -> str:
    path = replica.log_path
    return path.read_text(errors="replace")[-2000:] if path and path.exists() else "(no log)"


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_inventory_lists_both_nodes(ray_cluster: RayCluster) -> None:
    inventory = ray_cluster.inventory
    assert len(inventory.nodes) == 2
    gpu = inventory.node(ray_cluster.gpu_node)
    assert [(a.id, a.kind) for a in gpu.accelerators] == [
        (f"{gpu.id}/gpu0", "H100-80GB"),
        (f"{gpu.id}/gpu1", "H100-80GB"),
    ]
    assert gpu.accelerators[0].memory_bytes == 80 * GIB
    cpu = inventory.node(ray_cluster.cpu_node)
    assert [(a.id, a.kind) for a in cpu.accelerators] == [(f"{cpu.id}/cpu", "cpu")]
    assert cpu.accelerators[0].memory_bytes == cpu.memory_bytes > 0
    assert {node.region for node in inventory.nodes} == {"default"}
    assert {node.labels["ip"] for node in inventory.nodes} == {"127.0.0.1"}


def test_placement_puts_a_gpu_request_on_the_gpu_node(ray_cluster: RayCluster) -> None:
    gpu = _placed(ray_cluster, "H100-80GB", accelerators=2)
    assert gpu.node_id == ray_cluster.gpu_node
    assert len(gpu.accelerator_ids) == 2
    assert _placed(ray_cluster, "cpu").node_id == ray_cluster.cpu_node


def test_the_builtin_engine_serves_from_the_cpu_node(ray_cluster: RayCluster) -> None:
    backend = ray_cluster.backend
    assignment = _placed(ray_cluster, "cpu")
    model = bundled_model("smollm2-135m-instruct")
    settings = LaunchSettings(
        model_path=model.path(),
        served_name="smollm2",
        port=backend.free_port(assignment),
        context_tokens=512,
        threads=1,
    )
    replica = backend.launch(adapter_for("tokenmill"), settings, assignment)
    try:
        assert replica.node_id == ray_cluster.cpu_node
        assert replica.url == f"http://127.0.0.1:{settings.port}"
        _wait_healthy(replica, 120)
        response = httpx.post(
            f"{replica.url}/v1/chat/completions",
            json={"model": "smollm2", "max_tokens": 8,
                  "messages": [{"role": "user", "content": "Say hello."}]},
            timeout=60,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] >= 1
    finally:
        replica.stop(grace_seconds=10)
    assert not replica.alive()
    assert not _answers(replica.url)
    assert replica.log_path is not None and replica.log_path.exists()


def test_a_gpu_replica_runs_on_its_node_and_dies_with_its_actor(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    import ray

    backend = ray_cluster.backend
    assignment = _placed(ray_cluster, "H100-80GB", accelerators=2)
    # Our engine refuses GPU settings; the llama-server stand-in accepts them (-ngl).
    adapter = LlamaServerAdapter(standin.launcher("llama-server"))
    settings = LaunchSettings(
        model_path=tmp_path / "model.gguf",  # the stand-in only checks that it exists
        served_name="standin",
        port=backend.free_port(assignment),
        accelerators=2,
    )
    settings.model_path.write_bytes(b"GGUF")
    replica = backend.launch(adapter, settings, assignment)
    try:
        assert replica.node_id == ray_cluster.gpu_node == assignment.node_id
        _wait_healthy(replica, 30)
        # The actor holds both GPUs of the node in Ray's own accounting.
        assert ray.available_resources().get("GPU", 0) == 0
        os.kill(replica.actor_pid, signal.SIGKILL)  # the actor's worker crashes
        assert not replica.alive()
        deadline = time.monotonic() + 10
        while _answers(replica.url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _answers(replica.url), "the engine outlived its actor"
    finally:
        replica.kill()
    deadline = time.monotonic() + 10
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("GPU", 0) == 2


def test_an_engine_that_crashes_on_its_node_says_how_through_its_actor(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    backend = ray_cluster.backend
    assignment = _placed(ray_cluster, "cpu")
    crash = tmp_path / "crash"
    crash.touch()
    launcher = (*standin.launcher("llama-server"), "--crash-if-exists", str(crash))
    settings = LaunchSettings(
        model_path=tmp_path / "model.gguf",
        served_name="standin",
        port=backend.free_port(assignment),
    )
    settings.model_path.write_bytes(b"GGUF")
    replica = backend.launch(LlamaServerAdapter(launcher), settings, assignment)
    try:
        _wait_healthy(replica, 30)
        assert replica.exit_code() is None
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{replica.url}/v1/chat/completions", json={"messages": []}, timeout=10)
        deadline = time.monotonic() + 10
        while replica.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert replica.exit_code() == -signal.SIGSEGV
        assert isinstance(replica.log_tail(), str)
    finally:
        replica.kill()
    # ray.kill only asks: a call racing it may still reach the actor for a moment.
    deadline = time.monotonic() + 10
    while replica.exit_code() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert replica.exit_code() is None  # the actor is gone: nobody can tell any more
