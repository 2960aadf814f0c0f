"""One typed settings object, from ``TOKENMILL_*`` variables and an optional ``tokenmill.toml``.

Precedence, highest first: explicit arguments, environment, the TOML file
(``TOKENMILL_CONFIG`` or ``./tokenmill.toml``), defaults. Every default runs on one machine
with no services: SQLite in the data directory, in-process counters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tokenmill.protocol.tiers import DEFAULT_TTFT_TARGETS


def _default_data_dir() -> Path:
    return Path.home() / ".tokenmill"


def config_file() -> Path:
    return Path(os.environ.get("TOKENMILL_CONFIG", "tokenmill.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENMILL_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    redis_namespace: str = "tm"

    host: str = "127.0.0.1"
    port: int = 8000
    # HTTPS on the gateway itself (both or neither); otherwise terminate TLS in a proxy.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # Proxies whose X-Forwarded-For/-Proto headers are believed (addresses or networks, or
    # "*"): behind one, the client's own address is what audit and auth throttling see.
    trusted_proxies: list[str] = []
    # Gateway processes ``serve`` runs on its one port (SO_REUSEPORT); more than one needs
    # Redis (``redis_url``), so that limits and budgets hold across them.
    gateways: int = Field(default=1, ge=1, le=64)
    # ``tokenmill controller``'s own address, for /health and /metrics (0: a free port).
    controller_host: str = "127.0.0.1"
    controller_port: int = 0
    # How long the leading controller's lease lasts unrenewed: a standby takes over after it.
    leader_lease_seconds: float = Field(default=6.0, gt=0)

    # The bundled models ``serve`` puts in the library and deploys (empty: none).
    bundled_models: list[str] = ["smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"]
    bundled_min_replicas: int = Field(default=1, ge=0)
    bundled_max_replicas: int = Field(default=2, ge=1)
    bundled_idle_seconds: int = Field(default=600, ge=1)
    fleet_backend: str = "local"  # local | ray
    ray_address: str | None = None
    # The host's memory is split into this many CPU slots, so placement (and dedicated
    # isolation) works on a machine without accelerators.
    fleet_cpu_slots: int = Field(default=4, ge=1)
    fleet_autoscaler: str = "reactive"
    routing_policy: str = "prefix_affinity"  # or least_outstanding, round_robin
    # How much more loaded (in outstanding tokens) the replica holding a prompt's prefix may
    # be than the least loaded one and still get the request.
    routing_max_imbalance_tokens: int = Field(default=2048, ge=0)
    # A replica that fails to come up is retried after these delays; after
    # fleet_failing_after_failures failures in a row its deployment is "failing" (requests get
    # an immediate 503 deployment_failing) and retries slow to fleet_failing_backoff_seconds.
    fleet_backoff_seconds: list[float] = Field(default=[1.0, 2.0, 5.0, 10.0, 30.0], min_length=1)
    fleet_failing_after_failures: int = Field(default=3, ge=1)
    fleet_failing_backoff_seconds: list[float] = Field(
        default=[30.0, 60.0, 120.0, 300.0], min_length=1
    )
    queue_timeout_seconds: float = Field(default=60.0, gt=0)
    max_queued_requests: int = Field(default=256, ge=1)
    engine_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    engine_context_tokens: int = Field(default=4096, ge=64)
    engine_kv_cache_tokens: int | None = Field(default=None, ge=64)
    engine_max_running: int = Field(default=32, ge=1)
    engine_speculative_tokens: int = Field(default=0, ge=0)
    engine_start_timeout_seconds: float = 180.0
    # llama.cpp's extra weight buffers: auto is off on CPUs with AMX (tokenmill.engine.cpu).
    engine_extra_buffers: Literal["auto", "on", "off"] = "auto"
    # Our engine's queue: fair (tenants by weighted share, tiers by class) or fcfs (arrival).
    engine_scheduling: Literal["fair", "fcfs"] = "fair"

    # The Files API: the largest file, and what one tenant may store in all.
    files_max_bytes: int = Field(default=512 * 1024**2, ge=1)
    files_tenant_quota_bytes: int = Field(default=10 * 1024**3, ge=1)
    # File bytes in an S3-compatible bucket when set (else under the data directory); the
    # endpoint for MinIO, Ceph, R2...; credentials from boto3's chain (AWS_ACCESS_KEY_ID...).
    files_s3_bucket: str | None = None
    files_s3_endpoint_url: str | None = None
    files_s3_prefix: str = "files/"
    files_s3_region: str | None = None
    # Vector store files indexed at once per gateway: their embedding calls batch together.
    indexing_workers: int = Field(default=4, ge=1, le=64)
    # The Batch API: what a batch line costs as a fraction of the same interactive call (the
    # price book's price times this), batches run at once per gateway, lines in flight each.
    batch_price_factor: float = Field(default=0.5, ge=0.0, le=1.0)
    batch_workers: int = Field(default=1, ge=1, le=16)
    batch_concurrency: int = Field(default=2, ge=1, le=64)
    # Fine-tuning: jobs trained at once per gateway (0: this gateway trains none), and the
    # trainer's CPU threads (it runs at a lower priority than serving, in its own process).
    tuning_workers: int = Field(default=1, ge=0, le=8)
    tuning_threads: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1)

    # Service tiers: the time to first token each tier is held to. A priority request predicted
    # to miss it is served as default; a default or flex one is refused (429, Retry-After).
    service_tier_ttft_seconds: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TTFT_TARGETS)
    )

    # Secrets kept in the database (MCP servers' headers) are sealed with this Fernet key; by
    # default one is generated into <data_dir>/secret.key. All gateways must share it.
    secret_key: str | None = None
    # MCP servers a tenant names must be on public addresses, except these hosts or networks
    # (e.g. ["mcp.internal", "10.1.0.0/16"]); a platform admin's registrations are trusted.
    mcp_allowed_hosts: list[str] = []
    mcp_timeout_seconds: float = Field(default=30.0, gt=0)
    mcp_max_output_bytes: int = Field(default=64 * 1024, ge=1024)

    # The gateway's /metrics: a tenant label on every series (off: one series per tenant).
    metrics_tenant_labels: bool = False

    # Model files a tenant admin may add (by path) are under <this>/<tenant id>; a platform
    # admin may name any path on the server. Default: <data_dir>/tenant-models.
    tenant_models_dir: Path | None = None

    # Failed authentications a minute, per client address and per key prefix, before that
    # address or prefix is refused (429) until the minute passes; keys known valid never are.
    auth_failures_per_minute: int = Field(default=30, ge=0)

    upstream_timeout_seconds: float = 600.0
    usage_flush_interval_seconds: float = 0.05
    key_cache_ttl_seconds: float = 30.0
    billing_sync_seconds: float = 1.0
    log_level: str = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)

    @property
    def resolved_tenant_models_dir(self) -> Path:
        return self.tenant_models_dir or self.data_dir / "tenant-models"

    @property
    def adapters_dir(self) -> Path:
        """Fine-tunes' adapters, by job id: written by trainers, read by replicas."""
        return self.data_dir / "adapters"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'tokenmill.db'}"

    @property
    def ttft_targets(self) -> dict[str, float]:
        """Every tier's first-token target: those set, and the defaults for the rest."""
        return {**DEFAULT_TTFT_TARGETS, **self.service_tier_ttft_seconds}

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir
