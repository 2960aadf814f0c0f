"""What the fleet must know about an engine: how to launch it and how to read its metrics.

An adapter turns our engine-neutral ``LaunchSettings`` into one engine's command line and
environment, says which HTTP path tells that the replica is ready, and maps the engine's
Prometheus page onto ``ReplicaMetrics``, which uses our names. Adapters do no I/O: launching
and scraping belong to the fleet backends, parsing is a pure function of the page's text.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tokenmill.errors import InvalidRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class LaunchSettings:
    """One replica's settings, in our words; each adapter says which ones its engine honours.

    ``None`` leaves a setting to the engine's own default.
    """

    model_path: Path
    served_name: str
    host: str = "127.0.0.1"
    port: int
    context_tokens: int = 4096
    max_running: int | None = None  # sequences decoded together
    threads: int | None = None  # CPU threads (CPU engines only)
    speculative_tokens: int = 0  # prompt-lookup (n-gram) draft tokens per step; 0 is off
    kv_cache_tokens: int | None = None  # KV cells shared by all sequences
    accelerators: int = 0  # GPUs given to the replica (tensor parallel degree)
    gpu_memory_fraction: float | None = None  # share of each GPU's memory the engine may take
    extra_buffers: str | None = None  # llama.cpp's extra weight buffers: auto, on, off
    scheduling: str | None = None  # our engine's queue order: fair or fcfs
    adapters_dir: Path | None = None  # our engine: where fine-tunes' LoRA adapters are found
    extra_args: tuple[str, ...] = ()  # appended verbatim: engine flags we do not model

    def __post_init__(self) -> None:
        if not self.served_name:
            raise InvalidRequest("A replica needs a served model name.", param="served_name")
        if not 0 < self.port < 65536:
            raise InvalidRequest(f"Port {self.port} is out of range.", param="port")
        if self.context_tokens < 2:
            raise InvalidRequest("context_tokens must be at least 2.", param="context_tokens")
        for name in ("max_running", "threads", "kv_cache_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidRequest(f"{name} must be at least 1.", param=name)
        if self.kv_cache_tokens is not None and self.kv_cache_tokens < self.context_tokens:
            raise InvalidRequest(
                "kv_cache_tokens must be at least context_tokens.", param="kv_cache_tokens"
            )
        if self.speculative_tokens < 0:
            raise InvalidRequest(
                "speculative_tokens cannot be negative.", param="speculative_tokens"
            )
        if self.accelerators < 0:
            raise InvalidRequest("accelerators cannot be negative.", param="accelerators")
        fraction = self.gpu_memory_fraction
        if fraction is not None and not 0 < fraction <= 1:
            raise InvalidRequest(
                "gpu_memory_fraction must be in (0, 1].", param="gpu_memory_fraction"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaMetrics:
    """One scrape of a replica, in our names. ``None``: this engine does not export it.

    Counters and histogram sums are cumulative since the replica started; the scraper takes
    differences between scrapes. Engines that report only a KV usage fraction leave the cell
    counts ``None`` and fill ``kv_cache_usage``; engines that report cells get both.
    """

    requests_running: int
    requests_waiting: int
    prompt_tokens_total: int
    generation_tokens_total: int
    kv_cache_used_cells: int | None = None
    kv_cache_total_cells: int | None = None
    kv_cache_usage: float | None = None  # 0..1
    prefix_cache_hits: int | None = None  # prompt tokens served from the prefix cache
    prefix_cache_queries: int | None = None  # prompt tokens looked up in it
    prefix_cache_hit_rate: float | None = None  # the engine's own recent rate, when it has one
    ttft_seconds_sum: float | None = None
    ttft_seconds_count: int | None = None
    tpot_seconds_sum: float | None = None
    tpot_seconds_count: int | None = None


class EngineAdapter(ABC):
    """How the fleet launches and observes one kind of engine.

    Subclasses are small and stateless apart from ``launcher``: the program and leading
    arguments that start the engine (``("vllm",)``, ``(sys.executable, "-m", "...")``), so a
    deployment can point at another installation and tests can point at a stand-in.
    """

    name: str
    health_path: str = "/health"
    metrics_path: str = "/metrics"

    def __init__(self, launcher: tuple[str, ...]) -> None:
        if not launcher:
            raise ValueError("an engine launcher needs at least a program")
        self.launcher = launcher

    def command(self, settings: LaunchSettings) -> list[str]:
        """The full argv that starts a replica with these settings."""
        return [*self.launcher, *self.arguments(settings), *settings.extra_args]

    @abstractmethod
    def arguments(self, settings: LaunchSettings) -> list[str]:
        """The engine's own arguments for these settings (after the launcher)."""

    def env(self, settings: LaunchSettings) -> dict[str, str]:
        """Extra environment for the replica's process (added to the fleet's own)."""
        return {}

    def ready(self, status_code: int, body: bytes) -> bool:
        """Whether a response from ``health_path`` means the replica can take requests."""
        return status_code == 200

    @abstractmethod
    def parse_metrics(self, text: str) -> ReplicaMetrics:
        """Map the engine's Prometheus page onto our names.

        Raises ``ValueError`` when the text is not Prometheus exposition format, or lacks the
        request gauges (metrics switched off, or not this engine).
        """


class Samples:
    """A Prometheus page indexed by sample name (counters keep ``_total``; histograms give
    ``_sum`` and ``_count``), every label set kept, NaN samples dropped.

    Engines label their series (``model_name``, ``engine``, ``tp_rank``...); one replica's
    value is the sum over label sets for counts and the mean for fractions.
    """

    def __init__(self, text: str) -> None:
        self._series: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not math.isnan(sample.value):
                    self._series[sample.name].append((dict(sample.labels), sample.value))

    def has(self, name: str) -> bool:
        return name in self._series

    def first_present(self, *names: str) -> str | None:
        return next((name for name in names if name in self._series), None)

    def total(self, *names: str) -> float | None:
        """The sum over label sets of the first of ``names`` that the page has."""
        name = self.first_present(*names)
        return None if name is None else sum(value for _, value in self._series[name])

    def mean(self, *names: str) -> float | None:
        """The mean over label sets of the first of ``names`` that the page has."""
        name = self.first_present(*names)
        if name is None:
            return None
        values = [value for _, value in self._series[name]]
        return sum(values) / len(values)

    def labels(self, name: str) -> list[dict[str, str]]:
        return [labels for labels, _ in self._series.get(name, [])]

    def required_count(self, engine: str, *names: str) -> int:
        value = self.total(*names)
        if value is None:
            raise ValueError(
                f"{engine} metrics page has no {' or '.join(names)}; "
                "are its metrics switched on, and is this that engine?"
            )
        return round(value)

    def count(self, *names: str) -> int | None:
        value = self.total(*names)
        return None if value is None else round(value)

    def histogram(self, *bases: str) -> tuple[float | None, int | None]:
        """(sum, count) of the first histogram among ``bases`` that the page has."""
        base = next((b for b in bases if self.has(f"{b}_count")), None)
        if base is None:
            return None, None
        return self.total(f"{base}_sum"), self.count(f"{base}_count")


def usage_fraction(used: int | None, total: int | None) -> float | None:
    if used is None or not total:
        return None
    return used / total
