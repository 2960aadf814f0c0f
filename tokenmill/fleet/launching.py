"""What one replica of a deployment asks for: room to be placed in, then its engine's settings.

Pure: both come from the deployment, its model version and the fleet's options; the launch
settings also from where placement put the replica. The controller calls them, then acts.
"""

from __future__ import annotations

from pathlib import Path

from tokenmill.catalog.repository import ModelInfo, VersionInfo
from tokenmill.fleet.deployments import DeploymentInfo
from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.inventory import CPU_KIND, Inventory
from tokenmill.fleet.placement import Assignment, PlacementRequest
from tokenmill.fleet.seams import FleetOptions

MIB = 1024 * 1024
UNKNOWN_SIZE_BYTES = 256 * MIB
OVERHEAD_BYTES = 256 * MIB  # the engine process itself, beyond weights and KV cache


def placement_request(
    info: DeploymentInfo, version: VersionInfo, replica_id: str
) -> PlacementRequest:
    """The deployment's ``memory_bytes`` setting, or the weights plus a quarter for the KV
    cache plus the engine's own overhead."""
    footprint = info.settings.get("memory_bytes") or int(
        (version.size_bytes or UNKNOWN_SIZE_BYTES) * 1.25 + OVERHEAD_BYTES
    )
    return PlacementRequest(
        deployment_id=info.id,
        replica_id=replica_id,
        memory_bytes=footprint,
        accelerators=max(1, int(info.settings.get("accelerators", 1))),
        accelerator_kind=info.constraints.get("accelerator_kind"),
        region=info.constraints.get("region"),
        tenant_id=info.tenant_id,
        dedicated=info.dedicated,
    )


def launch_settings(
    info: DeploymentInfo,
    model: ModelInfo,
    version: VersionInfo,
    assignment: Assignment,
    inventory: Inventory,
    port: int,
    options: FleetOptions,
) -> LaunchSettings:
    """The deployment's engine settings over the fleet's defaults; the context never beyond
    the model version's own."""
    s = info.settings
    context = version.context_tokens(model.context_tokens)
    context = min(int(s.get("context_tokens") or context), context)
    gpus = sum(1 for a in assignment.accelerator_ids if inventory.accelerator(a).kind != CPU_KIND)
    return LaunchSettings(
        model_path=Path(version.artifact),
        served_name=info.served_name,
        port=port,
        context_tokens=context,
        max_running=s.get("max_running"),
        threads=s.get("threads") or options.threads,
        speculative_tokens=int(s.get("speculative_tokens", 0)),
        kv_cache_tokens=s.get("kv_cache_tokens"),
        accelerators=gpus,
        extra_buffers=options.extra_buffers,
        scheduling=options.scheduling,
        adapters_dir=options.adapters_dir,
    )
