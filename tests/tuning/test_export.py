from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from tests.tuning.persona import BASE, HELD_OUT, PERSONA, Tuned
from tokenmill.tuning.encoding import load_tokenizer
from tokenmill.tuning.export import (
    peft_weights,
    permute_rope_rows,
    read_base_layout,
    write_lora_gguf,
)
from tokenmill.tuning.trainer import load_base_model

Array = np.ndarray[Any, Any]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tensors(path: Path) -> dict[str, Array]:
    return {t.name: np.array(t.data) for t in gguf.GGUFReader(path).tensors}


def metadata(path: Path, key: str) -> Any:
    return gguf.GGUFReader(path).fields[key].contents()


def test_the_rope_permutation_is_the_one_between_transformers_and_the_gguf_file(
    bundled_gguf: gguf.GGUFReader,
) -> None:
    model = load_base_model(BASE)
    stored = {t.name: t for t in bundled_gguf.tensors}
    layer = model.model.layers[3].self_attn
    for name, module, heads in (("attn_q", layer.q_proj, 9), ("attn_k", layer.k_proj, 3)):
        raw = stored[f"blk.3.{name}.weight"]
        in_file = gguf.quants.dequantize(raw.data, raw.tensor_type)
        trained_on = module.weight.detach().numpy()

        assert not np.array_equal(trained_on, in_file)
        np.testing.assert_array_equal(permute_rope_rows(trained_on, heads), in_file)


def test_the_file_is_a_llama_cpp_lora_adapter(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = {
        "model.layers.0.self_attn.q_proj": (rng.random((2, 576)), rng.random((576, 2))),
        "model.layers.0.self_attn.k_proj": (rng.random((2, 576)), rng.random((192, 2))),
        "model.layers.29.mlp.down_proj": (rng.random((2, 1536)), rng.random((576, 2))),
    }
    path = tmp_path / "adapter.gguf"
    write_lora_gguf(path, base_gguf=BASE, weights=weights, alpha=4)

    assert metadata(path, "general.type") == "adapter"
    assert metadata(path, "general.architecture") == "llama"
    assert metadata(path, "adapter.type") == "lora"
    assert metadata(path, "adapter.lora.alpha") == 4.0
    written = tensors(path)
    assert sorted(written) == sorted(
        f"blk.{name}.weight.lora_{part}"
        for name in ("0.attn_q", "0.attn_k", "29.ffn_down")
        for part in "ab"
    )
    q_a, q_b = weights["model.layers.0.self_attn.q_proj"]
    np.testing.assert_array_equal(written["blk.0.attn_q.weight.lora_a"], q_a.astype(np.float32))
    np.testing.assert_array_equal(
        written["blk.0.attn_q.weight.lora_b"], permute_rope_rows(q_b.astype(np.float32), 9)
    )
    k_b = weights["model.layers.0.self_attn.k_proj"][1].astype(np.float32)
    np.testing.assert_array_equal(written["blk.0.attn_k.weight.lora_b"], permute_rope_rows(k_b, 3))
    down_b = weights["model.layers.29.mlp.down_proj"][1].astype(np.float32)
    np.testing.assert_array_equal(written["blk.29.ffn_down.weight.lora_b"], down_b)


@pytest.mark.parametrize(
    ("module", "a_shape", "b_shape"),
    [
        ("lm_head", (2, 576), (49152, 2)),  # tied to the embeddings: no output.weight
        ("model.layers.0.self_attn.v_proj", (2, 576), (576, 2)),  # v is 192 rows
        ("model.layers.0.self_attn.v_proj", (576, 2), (2, 192)),  # transposed
        ("model.layers.30.self_attn.q_proj", (2, 576), (576, 2)),  # 30 blocks: 0 to 29
    ],
)
def test_weights_that_do_not_fit_the_base_are_refused(
    tmp_path: Path, module: str, a_shape: tuple[int, int], b_shape: tuple[int, int]
) -> None:
    weights = {module: (np.zeros(a_shape), np.zeros(b_shape))}
    with pytest.raises(ValueError):
        write_lora_gguf(tmp_path / "x.gguf", base_gguf=BASE, weights=weights, alpha=1)
    assert list(tmp_path.iterdir()) == []


def test_peft_scaling_other_than_alpha_over_rank_is_folded_into_b() -> None:
    config = LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=32,
    )
    torch.manual_seed(0)
    lora = LoraConfig(
        r=4, lora_alpha=8, use_rslora=True, target_modules="all-linear", init_lora_weights=False
    )
    model = get_peft_model(LlamaForCausalLM(config), lora)
    pairs = peft_weights(model)

    assert sorted(pairs) == sorted(
        f"model.layers.0.{name}"
        for name in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    )
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    a, b = pairs["model.layers.0.self_attn.q_proj"]
    # rsLoRA scales by alpha / sqrt(r) = 4; a reader of alpha / r = 2 needs B doubled.
    np.testing.assert_array_equal(a, q.lora_A["default"].weight.detach().numpy())
    np.testing.assert_allclose(b, 2 * q.lora_B["default"].weight.detach().numpy())


# Parity: llama.cpp with the written adapter (the persona's, ``tuned``) computes what PEFT
# computes.

NEW_TOKENS = 16


def llama_greedy(llm: llama_cpp.Llama, prompt: list[int]) -> tuple[list[int], Array]:
    """The greedy continuation and the logits of the first generated token."""
    llm.reset()
    llm.eval(prompt)
    out: list[int] = []
    first: Array | None = None
    for _ in range(NEW_TOKENS):
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
        ).copy()
        first = logits if first is None else first
        out.append(int(np.argmax(logits)))
        if out[-1] == llm.token_eos():
            break
        llm.eval(out[-1:])
    assert first is not None
    return out, first


def peft_greedy(model: Any, prompt: list[int]) -> tuple[list[int], Array]:
    with torch.no_grad():
        output = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return output.sequences[0, len(prompt) :].tolist(), output.logits[0][0].numpy()


@pytest.mark.model
def test_llama_cpp_with_the_adapter_generates_what_peft_does(tuned: Tuned) -> None:
    assert tuned.losses[-1] < tuned.losses[0] / 4
    tokenizer = load_tokenizer(BASE)
    # One thread, for prompts too: llama.cpp's threads spin at each barrier, and beside other
    # busy processes two threads prefilled 31 tokens in 5 s where one took 0.1 s.
    options: dict[str, Any] = {"n_ctx": 256, "n_threads": 1, "n_threads_batch": 1, "verbose": False}
    plain = llama_cpp.Llama(model_path=str(tuned.f16_base), **options)
    adapted = llama_cpp.Llama(
        model_path=str(tuned.f16_base), lora_path=str(tuned.adapter), **options
    )
    for question in HELD_OUT:
        prompt = tokenizer.apply_chat_template(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        expected, expected_logits = peft_greedy(tuned.peft, prompt)
        got, logits = llama_greedy(adapted, prompt)
        before, before_logits = llama_greedy(plain, prompt)

        assert tokenizer.decode(got).startswith(PERSONA)
        assert got == expected
        assert before != got
        # The first token's logits: within llama.cpp's own rounding of the base (F16 weights,
        # its kernels) of PEFT's, against an adapter that moved them by far more.
        assert np.abs(logits - expected_logits).max() < 0.25
        assert np.abs(before_logits - expected_logits).max() > 2.5


def test_read_base_layout() -> None:
    layout = read_base_layout(BASE)

    assert (layout.architecture, layout.blocks, layout.heads, layout.kv_heads) == (
        "llama",
        30,
        9,
        3,
    )
    assert layout.shapes["blk.0.attn_k.weight"] == (576, 192)
