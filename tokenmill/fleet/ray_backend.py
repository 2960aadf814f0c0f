"""The ``ray`` fleet backend: engine replicas as Ray actors on a Ray cluster.

Each replica is one actor, ``ReplicaHost``, pinned to the node placement chose
(``NodeAffinitySchedulingStrategy(soft=False)``) and holding the Ray resources of the
accelerators it was given (``GPU`` and ``accelerator_type:<KIND>``), so Ray's own bookkeeping
agrees with ours and sets ``CUDA_VISIBLE_DEVICES`` for the engine. The actor starts the engine's
command as a subprocess on its node and answers for it; the engine binds to the node's IP, which
is where the gateway reaches it.

What the cluster must provide: ``tokenmill`` and the engines installed at the same paths on every
node (the adapter's launcher and the model path are used as given), ``GPU`` and
``accelerator_type:<KIND>`` resources on GPU nodes, and optionally a ``region:<NAME>`` resource.
Log paths under ``log_dir`` are paths on the node that runs the replica.

``ray`` is imported when a ``RayBackend`` is built, never when tokenmill is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings
from tokenmill.fleet.inventory import (
    CPU_KIND,
    KNOWN_ACCELERATOR_KINDS,
    Accelerator,
    Inventory,
    Node,
)
from tokenmill.fleet.local import die_with_parent, tail_lines
from tokenmill.fleet.placement import Assignment

log = logging.getLogger(__name__)

ACCELERATOR_RESOURCE_PREFIX = "accelerator_type:"
REGION_RESOURCE_PREFIX = "region:"
DEFAULT_REGION = "default"

# Ray's accelerator type names (``ray.util.accelerators``) -> our kind names. A bare "H100" or
# "A100" is the 80 GB part, the size clusters are mostly built from.
RAY_ACCELERATOR_KINDS: dict[str, str] = {
    "H100": "H100-80GB",
    "A100": "A100-80GB",
    "A100-80G": "A100-80GB",
    "A100-40G": "A100-40GB",
    "L4": "L4",
    "L40S": "L40S",
    "A10G": "A10G",
}


def _kind_of(ray_kind: str) -> str | None:
    """Our kind for a Ray accelerator type, or None when we do not know its memory."""
    kind = RAY_ACCELERATOR_KINDS.get(ray_kind, ray_kind)
    return kind if kind in KNOWN_ACCELERATOR_KINDS else None


def _ray_kind_of(kind: str) -> str:
    """The Ray accelerator type a node advertises for one of our kinds."""
    for ray_kind, ours in RAY_ACCELERATOR_KINDS.items():
        if ours == kind:
            return ray_kind
    return kind


def node_from_ray(info: dict[str, Any]) -> Node:
    """One entry of ``ray.nodes()`` as our ``Node``; labels carry the node's IP as ``ip``.

    GPUs need an ``accelerator_type:<KIND>`` resource of a kind we know, else we cannot place
    by memory and the node's GPUs are left out (with a warning). A node without GPUs offers its
    memory as one ``cpu`` accelerator.
    """
    node_id = str(info["NodeID"])
    resources: dict[str, float] = dict(info.get("Resources") or {})
    region = next(
        (
            name.removeprefix(REGION_RESOURCE_PREFIX)
            for name in resources
            if name.startswith(REGION_RESOURCE_PREFIX)
        ),
        DEFAULT_REGION,
    )
    memory_bytes = max(int(resources.get("memory", 0)), 1)
    gpus = int(resources.get("GPU", 0))
    accelerators: list[Accelerator] = []
    if gpus:
        ray_kinds = [n for n in resources if n.startswith(ACCELERATOR_RESOURCE_PREFIX)]
        kind = (
            _kind_of(ray_kinds[0].removeprefix(ACCELERATOR_RESOURCE_PREFIX)) if ray_kinds else None
        )
        if kind is None:
            log.warning("node %s has %d GPUs of unknown kind %s; not placing on them",
                        node_id, gpus, ray_kinds or "(none)")  # fmt: skip
        else:
            memory = KNOWN_ACCELERATOR_KINDS[kind].memory_bytes
            accelerators = [Accelerator(f"{node_id}/gpu{i}", kind, memory) for i in range(gpus)]
    else:
        accelerators = [Accelerator(f"{node_id}/cpu", CPU_KIND, memory_bytes)]
    return Node(
        id=node_id,
        region=region,
        accelerators=tuple(accelerators),
        cpu_cores=max(int(resources.get("CPU", 0)), 1),
        memory_bytes=memory_bytes,
        labels={"ip": str(info["NodeManagerAddress"])},
    )


def _free_port_on_this_node(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ReplicaHost:
    """The actor body: starts one engine process on its node and answers for it.

    Runs as a plain (single-threaded) Ray actor, so its methods run on the worker's main thread,
    the thread that started the engine: ``PR_SET_PDEATHSIG`` then ends the engine when the actor's
    worker dies, however it dies (``ray.kill``, a crash, its node going away). Ray's raylet also
    kills a dead worker's children by default; this does not depend on that setting.
    """

    def __init__(self, command: list[str], env: dict[str, str], log_path: str) -> None:
        import ray

        path = self.log_path = Path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as log_file:
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
                env={**os.environ, **env},
            )
        self.node_id = ray.get_runtime_context().get_node_id()

    def where(self) -> tuple[str, int, int]:
        """The node id, the engine's pid and the actor's own (worker) pid."""
        return self.node_id, self.process.pid, os.getpid()

    def alive(self) -> bool:
        return self.process.poll() is None

    def ended(self, lines: int) -> tuple[int | None, str]:
        """The engine's exit code (None while it runs) and the last lines of its log."""
        return self.process.poll(), tail_lines(self.log_path, lines)

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM, then SIGKILL after ``grace_seconds``; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@dataclass(slots=True)
class RayReplica:
    """A replica as the controller sees it: a handle on its ``ReplicaHost`` actor."""

    url: str
    log_path: Path | None
    actor: Any
    node_id: str
    pid: int  # the engine's, on node_id
    actor_pid: int  # the Ray worker's that hosts the actor, on node_id
    call_timeout_seconds: float = 5.0

    def alive(self) -> bool:
        """Asks the actor; an actor or node that is gone, or does not answer in time, is dead."""
        import ray

        try:
            return bool(ray.get(self.actor.alive.remote(), timeout=self.call_timeout_seconds))
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as error:
            log.info("replica actor at %s does not answer: %s", self.url, type(error).__name__)
            return False

    def exit_code(self) -> int | None:
        return self._ended(0)[0]

    def log_tail(self, lines: int = 20) -> str:
        return self._ended(lines)[1]

    def _ended(self, lines: int) -> tuple[int | None, str]:
        """Asks the actor; from an actor that is gone, nothing can be learnt."""
        import ray

        try:
            code, tail = ray.get(self.actor.ended.remote(lines), timeout=self.call_timeout_seconds)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            return None, ""
        return code, tail

    def stop(self, grace_seconds: float = 10.0) -> None:
        import ray

        # Gone already, or stuck: ray.kill below ends it either way.
        with contextlib.suppress(ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
            ray.get(self.actor.stop.remote(grace_seconds), timeout=grace_seconds + 10)
        ray.kill(self.actor, no_restart=True)

    def kill(self) -> None:
        """Kills the actor's worker; the engine dies with it (``PR_SET_PDEATHSIG``)."""
        import ray

        ray.kill(self.actor, no_restart=True)


class RayBackend:
    name = "ray"

    def __init__(
        self,
        address: str | None,
        log_dir: Path,
        *,
        launch_timeout_seconds: float = 60.0,
        call_timeout_seconds: float = 5.0,
    ) -> None:
        """Connects to the Ray cluster at ``address`` (``None``: ``RAY_ADDRESS`` or the cluster
        running on this machine; never a new one)."""
        import ray

        self.log_dir = log_dir
        self.launch_timeout_seconds = launch_timeout_seconds
        self.call_timeout_seconds = call_timeout_seconds
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            ray.init(
                address=address or "auto",
                namespace="tokenmill",
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        self._inventory = Inventory(())

    def inventory(self) -> Inventory:
        """The cluster's alive nodes now, in ``ray.nodes()`` order."""
        import ray

        listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        nodes = [node_from_ray(info) for info in listed if info.get("Alive")]
        self._inventory = Inventory(tuple(nodes))
        return self._inventory

    def _node(self, node_id: str) -> Node:
        """The node as last seen, looking again when it is new to us."""
        for inventory in (self._inventory, self.inventory()):
            try:
                return inventory.node(node_id)
            except KeyError:
                continue
        raise ServiceUnavailable(f"Ray node {node_id} is not in the cluster.")

    def _pinned(self, node_id: str) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)

    def free_port(self, assignment: Assignment) -> int:
        """A port free now on the assignment's node (asked there, by a zero-CPU task)."""
        import ray

        host = self._node(assignment.node_id).labels["ip"]
        task = ray.remote(num_cpus=0)(_free_port_on_this_node).options(
            scheduling_strategy=self._pinned(assignment.node_id)
        )
        try:
            return int(ray.get(task.remote(host), timeout=self.launch_timeout_seconds))
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as error:
            raise ServiceUnavailable(
                f"Cannot reach Ray node {assignment.node_id}: {error}"
            ) from error

    def launch(
        self, adapter: EngineAdapter, settings: LaunchSettings, assignment: Assignment
    ) -> RayReplica:
        """Starts the replica's actor on its node and waits until the engine process runs.

        The engine binds to the node's IP whatever ``settings.host`` says: a replica on another
        machine listening on loopback could not be reached.
        """
        import ray

        node = self._node(assignment.node_id)
        host = node.labels["ip"]
        settings = replace(settings, host=host)
        given = set(assignment.accelerator_ids)
        kinds = [a.kind for a in node.accelerators if a.id in given and a.kind != CPU_KIND]
        gpus = len(kinds)
        resources = {ACCELERATOR_RESOURCE_PREFIX + _ray_kind_of(kinds[0]): gpus} if gpus else {}
        log_path = self.log_dir / f"replica-{assignment.replica_id}.log"
        command = adapter.command(settings)
        log.info("starting %s on Ray node %s (%s:%d): %s",
                 assignment.replica_id, node.id, host, settings.port, command)  # fmt: skip
        remote_class: Any = ray.remote(ReplicaHost)
        actor: Any = remote_class.options(
            name=f"replica-{assignment.replica_id}",
            num_cpus=0,
            num_gpus=gpus,
            resources=resources,
            scheduling_strategy=self._pinned(assignment.node_id),
            max_restarts=0,
        ).remote(command, adapter.env(settings), str(log_path))
        try:
            node_id, pid, actor_pid = ray.get(
                actor.where.remote(), timeout=self.launch_timeout_seconds
            )
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as error:
            ray.kill(actor, no_restart=True)
            raise ServiceUnavailable(
                f"Replica {assignment.replica_id} did not start on Ray node "
                f"{assignment.node_id}: {error}"
            ) from error
        return RayReplica(
            url=f"http://{host}:{settings.port}",
            log_path=log_path,
            actor=actor,
            node_id=str(node_id),
            pid=int(pid),
            actor_pid=int(actor_pid),
            call_timeout_seconds=self.call_timeout_seconds,
        )

    def close(self) -> None:
        """Disconnects; Ray ends the actors this driver owns, and their engines with them."""
        import ray

        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
