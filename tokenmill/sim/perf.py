"""The engine performance model: what one engine step costs and how a replica schedules.

A step computes ``batched_tokens`` (one per decoding sequence plus prompt chunks) against
``kv_tokens`` of context held in the KV cache:

    step_seconds = fixed + per_batched_token * batched_tokens + per_kv_token * kv_tokens
                   (+ per_batched_kv_token * batched_tokens * kv_tokens
                    + per_sampled_token * decoding sequences, on CPU)

On a GPU, ``fixed`` is reading every weight once (decode is bound by memory bandwidth),
``per_batched_token`` is the matrix work of one token (bound by tensor throughput) and
``per_kv_token`` is reading one token's keys and values in attention. On this machine the
coefficients are fitted to measurements of our own engine (``bench/calibrate_sim.py``
writes ``calibration/cpu_smollm2.json``).

GPU efficiency factors (published measurements, not ours):
- ``DECODE_BANDWIDTH_EFFICIENCY`` 0.75: single-stream decode of Llama-3.1-8B (BF16, vLLM)
  reaches about 77% of an A100's memory-bandwidth roofline (75 tokens/s; J. Musgrave,
  "vLLM throughput-latency sweep on NVIDIA A100", johnmusgrave.com), and 6.48 ms per output
  token on an H100-80GB-HBM3 with vLLM 0.21 (InferenceBench concurrency-sweep recipe,
  yobitelcomm.github.io/bench), i.e. 16.06 GB / 6.48 ms = 2.48 TB/s = 74% of 3.35 TB/s.
- ``PREFILL_FLOPS_EFFICIENCY`` 0.40: model FLOPs utilisation of dense BF16 transformer work
  on H100, 38-43% (Llama 3 Herd of Models, Meta 2024, table 4).
- GPU scheduler limits follow vLLM: ``max_num_seqs`` 256 and ``gpu_memory_utilization`` 0.9
  (defaults), chunked prefill filling the step budget next to decodes, and a step budget
  (``max_num_batched_tokens``) of 2048, the value vLLM's optimization guide recommends for
  inter-token latency ("Optimization and Tuning", docs.vllm.ai, chunked prefill section):
  the 100 ms TPOT target rules out the larger, throughput-oriented budgets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources

from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS, AcceleratorKind

DECODE_BANDWIDTH_EFFICIENCY = 0.75
PREFILL_FLOPS_EFFICIENCY = 0.40
GPU_MEMORY_UTILIZATION = 0.9
GPU_MAX_RUNNING = 256
GPU_MAX_STEP_TOKENS = 2048
MIN_PREFILL_TOKENS_WHILE_DECODING = 8  # our engine's scheduler (tokenmill.engine.scheduler)

# Where weights come from when a replica loads (bytes per second, datasheet peaks):
# host memory over PCIe 5.0 x16, 64 GB/s per direction (PCI-SIG PCIe 5.0 specification);
# a local NVMe SSD, 7.45 GB/s sequential read (Samsung 990 PRO datasheet);
# the network, one 100 Gb/s link (12.5 GB/s).
LOAD_BANDWIDTH_BYTES_PER_SECOND = {
    "host": 64e9,
    "disk": 7.45e9,
    "network": 12.5e9,
}


@dataclass(frozen=True, slots=True)
class StepCost:
    """``sampled`` is the number of sequences that get a token this step (decoding ones);
    ``batched`` counts every token computed, prompt chunks included."""

    fixed_seconds: float
    per_batched_token_seconds: float
    per_kv_token_seconds: float
    # llama.cpp on CPU with one unified KV cache: every token of a step attends over all the
    # cells in use (other sequences' masked out), so attention costs batched x KV tokens
    per_batched_kv_token_seconds: float = 0.0
    # our engine samples, detokenizes and streams each new token in Python
    per_sampled_token_seconds: float = 0.0
    # our CPU engine computes a lone token beside a scratch token (tokenmill.engine.runner)
    min_batched_tokens: int = 1

    def _kv_seconds(self, batched_tokens: int) -> float:
        return self.per_kv_token_seconds + self.per_batched_kv_token_seconds * batched_tokens

    def step_seconds(self, batched_tokens: int, kv_tokens: int, sampled: int = 0) -> float:
        batched_tokens = max(batched_tokens, self.min_batched_tokens)
        return (
            self.fixed_seconds
            + self.per_batched_token_seconds * batched_tokens
            + self.per_sampled_token_seconds * sampled
            + self._kv_seconds(batched_tokens) * kv_tokens
        )

    def run_seconds(
        self, steps: int, batched_tokens: int, kv_tokens_start: int, sampled: int = 0
    ) -> float:
        """``steps`` identical steps; the context grows by ``batched_tokens`` each step."""
        first = self.step_seconds(batched_tokens, kv_tokens_start, sampled)
        growth = self._kv_seconds(batched_tokens) * batched_tokens
        return steps * first + growth * steps * (steps - 1) / 2

    def steps_within(
        self, elapsed_seconds: float, batched_tokens: int, kv_start: int, sampled: int = 0
    ) -> int:
        """How many whole steps of such a run finish within ``elapsed_seconds``."""
        if elapsed_seconds <= 0:
            return 0
        first = self.step_seconds(batched_tokens, kv_start, sampled)
        half_growth = self._kv_seconds(batched_tokens) * batched_tokens / 2
        if half_growth <= 0:
            steps = int(elapsed_seconds / first)
        else:  # half_growth * s^2 + (first - half_growth) * s - elapsed = 0
            b = first - half_growth
            root = math.sqrt(b * b + 4 * half_growth * elapsed_seconds)
            steps = int((-b + root) / half_growth / 2)

        def run(n: int) -> float:
            return self.run_seconds(n, batched_tokens, kv_start, sampled)

        while steps > 0 and run(steps) > elapsed_seconds:
            steps -= 1
        while run(steps + 1) <= elapsed_seconds:
            steps += 1
        return steps


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A served model: its size and what one token of context costs in the KV cache."""

    model_id: str
    architecture: str
    parameters: float
    weight_bytes: int
    kv_bytes_per_token: int


@dataclass(frozen=True, slots=True)
class Architecture:
    name: str
    parameters: float
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_value: int = 2  # BF16 weights and KV cache

    @property
    def weight_bytes(self) -> int:
        return int(self.parameters * self.bytes_per_value)

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_value


# Shapes from each model's published config.json (num_hidden_layers, num_key_value_heads,
# head_dim) and parameter counts from its model card.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("qwen2.5-1.5b", 1.54e9, 28, 2, 128),
        Architecture("llama3.2-3b", 3.21e9, 28, 8, 128),
        Architecture("llama3.1-8b", 8.03e9, 32, 8, 128),
        Architecture("qwen2.5-14b", 14.7e9, 48, 8, 128),
        Architecture("qwen2.5-32b", 32.8e9, 64, 8, 128),
        # SmolLM2-135M, Q4_1 GGUF as bundled: 30 layers, 3 KV heads of 64, F16 KV cache
        Architecture("smollm2-135m", 0.135e9, 30, 3, 64),
    )
}


def model_spec(model_id: str, architecture: str) -> ModelSpec:
    arch = ARCHITECTURES[architecture]
    return ModelSpec(
        model_id, arch.name, arch.parameters, arch.weight_bytes, arch.kv_bytes_per_token
    )


@dataclass(frozen=True, slots=True)
class EngineProfile:
    """How one replica of one model runs on one accelerator kind."""

    cost: StepCost
    max_running: int
    max_step_tokens: int
    kv_capacity_tokens: int
    prefill_tokens_while_decoding: int | None = None  # None: max(8, decoding), as our engine
    prefix_cache_share: float = 0.25  # of the KV cache, at most, holding idle cached prefixes

    def prefill_budget_tokens(self, decoding: int) -> int:
        room = self.max_step_tokens - decoding
        if decoding == 0:
            return room
        limit = self.prefill_tokens_while_decoding
        if limit is None:
            limit = max(MIN_PREFILL_TOKENS_WHILE_DECODING, decoding)
        return max(0, min(room, limit))

    def unloaded_ttft_seconds(self, prompt_tokens: int) -> float:
        """Prefill alone on an idle replica, in chunks of the step budget."""
        total = 0.0
        done = 0
        while done < prompt_tokens:
            chunk = min(self.max_step_tokens, prompt_tokens - done)
            total += self.cost.step_seconds(chunk, done + chunk)
            done += chunk
        return total


def accelerator_kind(name: str) -> AcceleratorKind:
    try:
        return KNOWN_ACCELERATOR_KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_ACCELERATOR_KINDS))
        raise ValueError(f"unknown accelerator kind {name!r}; known: {known}") from None


def gpu_step_cost(model: ModelSpec, kind: AcceleratorKind) -> StepCost:
    bandwidth = kind.memory_bandwidth_gb_per_second * 1e9 * DECODE_BANDWIDTH_EFFICIENCY
    flops = kind.bf16_dense_tflops * 1e12 * PREFILL_FLOPS_EFFICIENCY
    return StepCost(
        fixed_seconds=model.weight_bytes / bandwidth,
        per_batched_token_seconds=2 * model.parameters / flops,
        per_kv_token_seconds=model.kv_bytes_per_token / bandwidth,
    )


def gpu_profile(model: ModelSpec, kind: AcceleratorKind, memory_bytes: int) -> EngineProfile:
    """A replica holding ``memory_bytes`` of the accelerator (weights plus its KV cache)."""
    usable = min(memory_bytes, int(kind.memory_bytes * GPU_MEMORY_UTILIZATION))
    kv_tokens = (usable - model.weight_bytes) // model.kv_bytes_per_token
    if kv_tokens <= 0:
        raise ValueError(f"{model.model_id} does not fit in {memory_bytes} bytes of {kind.name}")
    return EngineProfile(
        cost=gpu_step_cost(model, kind),
        max_running=GPU_MAX_RUNNING,
        max_step_tokens=GPU_MAX_STEP_TOKENS,
        kv_capacity_tokens=int(kv_tokens),
        prefill_tokens_while_decoding=GPU_MAX_STEP_TOKENS,
        prefix_cache_share=1.0,  # vLLM keeps freed blocks cached until it needs them
    )


CPU_CALIBRATION = "cpu_smollm2.json"
# A CPU machine running one replica of our engine: only its memory matters (placement), so
# a fleet of such nodes holds one replica per node.
CPU_NODE = AcceleratorKind("cpu", 24 * 2**30, 0.0, 0.0)


def cpu_profile(calibration_name: str = CPU_CALIBRATION) -> EngineProfile:
    """Our engine on this machine, from the coefficients ``bench/calibrate_sim.py`` fitted."""
    text = (
        resources.files("tokenmill.sim")
        .joinpath("calibration")
        .joinpath(calibration_name)
        .read_text()
    )
    data = json.loads(text)
    return EngineProfile(
        cost=StepCost(
            fixed_seconds=data["fixed_seconds"],
            per_batched_token_seconds=data["per_batched_token_seconds"],
            per_kv_token_seconds=data["per_kv_token_seconds"],
            per_batched_kv_token_seconds=data.get("per_batched_kv_token_seconds", 0.0),
            per_sampled_token_seconds=data.get("per_sampled_token_seconds", 0.0),
            min_batched_tokens=data.get("min_batched_tokens", 1),
        ),
        max_running=data["max_running"],
        max_step_tokens=data["max_step_tokens"],
        kv_capacity_tokens=data["kv_capacity_tokens"],
        prefill_tokens_while_decoding=data.get("prefill_tokens_while_decoding"),
        prefix_cache_share=data.get("prefix_cache_share", 0.25),
    )
