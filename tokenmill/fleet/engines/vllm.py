"""vLLM (``vllm serve``).

Sources:
- flags: vLLM "Engine Arguments" (docs.vllm.ai/en/v0.8.5/serving/engine_args.html and later):
  ``vllm serve MODEL --host --port --served-model-name --max-model-len --max-num-seqs
  --tensor-parallel-size --gpu-memory-utilization --speculative-config JSON``; n-gram
  speculation is ``{"method": "ngram", "num_speculative_tokens": N, "prompt_lookup_max": K}``
  (docs "Speculative Decoding"). ``VLLM_NO_USAGE_STATS=1`` turns off usage reporting (docs
  "Usage Stats Collection").
- metrics: ``vllm/v1/metrics/loggers.py`` (PrometheusStatLogger), labels ``model_name`` and
  ``engine``: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:kv_cache_usage_perc`` (0.9+; before: ``vllm:gpu_cache_usage_perc``),
  ``vllm:prefix_cache_queries``/``_hits`` counters (0.9+; before: ``vllm:gpu_prefix_cache_*``,
  and in the v0 engine only the gauge ``vllm:gpu_prefix_cache_hit_rate``),
  ``vllm:prompt_tokens``/``vllm:generation_tokens`` counters, the histograms
  ``vllm:time_to_first_token_seconds`` and ``vllm:inter_token_latency_seconds`` (newer; the
  older ``vllm:time_per_output_token_seconds`` is deprecated in its favour), and the info
  gauge ``vllm:cache_config_info`` whose labels carry ``block_size`` and ``num_gpu_blocks``.
- health: ``GET /health`` is 200 once the engine is up (the server listens only then).
"""

from __future__ import annotations

import json

from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings, ReplicaMetrics, Samples

PROMPT_LOOKUP_MAX_TOKENS = 4  # n-gram length vLLM matches against the prompt


def _kv_cache_cells(s: Samples) -> int | None:
    """KV cells in all, from ``vllm:cache_config_info`` (blocks times block size, per engine)."""
    total = 0
    for labels in s.labels("vllm:cache_config_info"):
        try:
            total += int(labels["num_gpu_blocks"]) * int(labels["block_size"])
        except (KeyError, ValueError):  # "None" until the engine has profiled its memory
            return None
    return total or None


def parse_vllm_metrics(text: str) -> ReplicaMetrics:
    s = Samples(text)
    usage = s.mean("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    total_cells = _kv_cache_cells(s)
    used_cells = (
        round(usage * total_cells) if usage is not None and total_cells is not None else None
    )
    ttft_sum, ttft_count = s.histogram("vllm:time_to_first_token_seconds")
    tpot_sum, tpot_count = s.histogram(
        "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"
    )
    return ReplicaMetrics(
        requests_running=s.required_count("vLLM", "vllm:num_requests_running"),
        requests_waiting=s.required_count("vLLM", "vllm:num_requests_waiting"),
        prompt_tokens_total=s.count("vllm:prompt_tokens_total") or 0,
        generation_tokens_total=s.count("vllm:generation_tokens_total") or 0,
        kv_cache_used_cells=used_cells,
        kv_cache_total_cells=total_cells,
        kv_cache_usage=usage,
        prefix_cache_hits=s.count(
            "vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"
        ),
        prefix_cache_queries=s.count(
            "vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"
        ),
        prefix_cache_hit_rate=s.mean("vllm:gpu_prefix_cache_hit_rate"),
        ttft_seconds_sum=ttft_sum,
        ttft_seconds_count=ttft_count,
        tpot_seconds_sum=tpot_sum,
        tpot_seconds_count=tpot_count,
    )


class VllmAdapter(EngineAdapter):
    """vLLM sizes its KV cache from ``gpu_memory_fraction`` (``--gpu-memory-utilization``), so
    ``kv_cache_tokens`` is not passed; ``threads`` means nothing to a GPU engine either.
    ``accelerators`` becomes the tensor-parallel degree."""

    name = "vllm"

    def __init__(self, launcher: tuple[str, ...] = ("vllm",)) -> None:
        super().__init__(launcher)

    def arguments(self, settings: LaunchSettings) -> list[str]:
        args = [
            "serve", str(settings.model_path),
            "--host", settings.host,
            "--port", str(settings.port),
            "--served-model-name", settings.served_name,
            "--max-model-len", str(settings.context_tokens),
        ]  # fmt: skip
        if settings.max_running is not None:
            args += ["--max-num-seqs", str(settings.max_running)]
        if settings.accelerators > 0:
            args += ["--tensor-parallel-size", str(settings.accelerators)]
        if settings.gpu_memory_fraction is not None:
            args += ["--gpu-memory-utilization", str(settings.gpu_memory_fraction)]
        if settings.speculative_tokens > 0:
            config = {
                "method": "ngram",
                "num_speculative_tokens": settings.speculative_tokens,
                "prompt_lookup_max": PROMPT_LOOKUP_MAX_TOKENS,
            }
            args += ["--speculative-config", json.dumps(config, separators=(",", ":"))]
        return args

    def env(self, settings: LaunchSettings) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}

    def parse_metrics(self, text: str) -> ReplicaMetrics:
        return parse_vllm_metrics(text)
