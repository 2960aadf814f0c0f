"""llama.cpp's ``llama-server``.

Sources:
- flags and health: ggml-org/llama.cpp ``tools/server/README.md`` (formerly
  ``examples/server/README.md``): ``-m/--model FNAME``, ``--host``, ``--port``,
  ``-a/--alias``, ``-c/--ctx-size`` (the KV context shared by all slots), ``-np/--parallel``
  (slots), ``-t/--threads``, ``-ngl/--n-gpu-layers``, ``-cb/--cont-batching``, ``--metrics``
  (the ``/metrics`` page exists only with it), ``-nr/--no-repack`` (weights stay out of the
  extra buffers, as ``use_extra_bufts = false``). ``GET /health`` answers 503
  ``{"error": {"code": 503, "message": "Loading model", ...}}`` while the model loads and 200
  ``{"status": "ok"}`` once ready.
- metrics: the same README, "GET /metrics": gauges ``llamacpp:requests_processing`` and
  ``llamacpp:requests_deferred``; counters ``llamacpp:prompt_tokens_total``,
  ``llamacpp:prompt_seconds_total``, ``llamacpp:tokens_predicted_total``,
  ``llamacpp:tokens_predicted_seconds_total``. Older builds also had the gauges
  ``llamacpp:kv_cache_usage_ratio`` and ``llamacpp:kv_cache_tokens``; current ones do not, so
  KV figures are ``None`` there. No label sets, no latency histograms, no prefix-cache counts.
"""

from __future__ import annotations

from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings, ReplicaMetrics, Samples

ALL_LAYERS = 999  # -ngl takes a layer count; more than any model has means "all of them"


def parse_llama_server_metrics(text: str) -> ReplicaMetrics:
    """``llamacpp:*`` onto ours.

    llama-server has no time-per-token histogram, but it does sum, over slots, the seconds
    spent generating (``tokens_predicted_seconds_total``) and the tokens generated
    (``tokens_predicted_total``): their ratio is the mean time per output token a request
    sees, so they stand as the TPOT sum and count. Time to first token it cannot give.
    """
    s = Samples(text)
    generated = s.count("llamacpp:tokens_predicted_total") or 0
    generating_seconds = s.total("llamacpp:tokens_predicted_seconds_total")
    return ReplicaMetrics(
        requests_running=s.required_count("llama-server", "llamacpp:requests_processing"),
        requests_waiting=s.required_count("llama-server", "llamacpp:requests_deferred"),
        prompt_tokens_total=s.count("llamacpp:prompt_tokens_total") or 0,
        generation_tokens_total=generated,
        kv_cache_used_cells=s.count("llamacpp:kv_cache_tokens"),
        kv_cache_usage=s.mean("llamacpp:kv_cache_usage_ratio"),
        tpot_seconds_sum=generating_seconds,
        tpot_seconds_count=generated if generating_seconds is not None else None,
    )


class LlamaServerAdapter(EngineAdapter):
    """llama-server splits ``-c`` among its ``-np`` slots, so the context it is given is the
    larger of ``kv_cache_tokens`` and ``context_tokens`` times the slots: every slot then
    holds a full-length request. ``gpu_memory_fraction`` has no equivalent and is not passed.

    Speculation in llama-server needs a draft model (``-md FILE``) or, in recent builds only,
    an n-gram ``--spec-type``; neither is a setting we model, so ``speculative_tokens`` is
    refused: put those flags in ``extra_args``.
    """

    name = "llama-server"

    def __init__(self, launcher: tuple[str, ...] = ("llama-server",)) -> None:
        super().__init__(launcher)

    def arguments(self, settings: LaunchSettings) -> list[str]:
        if settings.speculative_tokens:
            raise InvalidRequest(
                "llama-server speculates with a draft model (-md FILE) or a build-specific "
                "--spec-type; pass those in extra_args and leave speculative_tokens at 0.",
                param="speculative_tokens",
            )
        slots = settings.max_running or 1
        context = max(settings.kv_cache_tokens or 0, settings.context_tokens * slots)
        args = [
            "-m", str(settings.model_path),
            "--host", settings.host,
            "--port", str(settings.port),
            "--alias", settings.served_name,
            "-c", str(context),
            "-np", str(slots),
            "--metrics",
            "--cont-batching",
        ]  # fmt: skip
        if settings.threads is not None:
            args += ["-t", str(settings.threads)]
        if settings.accelerators > 0:
            args += ["-ngl", str(ALL_LAYERS)]
        if settings.extra_buffers == "off":  # llama-server has no "auto": only off is passed
            args.append("--no-repack")
        return args

    def parse_metrics(self, text: str) -> ReplicaMetrics:
        return parse_llama_server_metrics(text)
