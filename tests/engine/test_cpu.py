"""The choice of llama.cpp's weight buffers, with the CPU's flags given as input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.engine.cpu import (
    has_amx,
    llama_cpu_flags,
    parse_cpu_flags,
    read_cpu_flags,
    use_extra_buffers,
)

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
processor\t: 1
flags\t\t: fpu vme avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse4_2 avx avx2 fma f16c bmi2 sha_ni vaes
"""
GRAVITON = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve
"""
LLAMA_INFO_AMX = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | "
LLAMA_INFO_AVX2 = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | AVX512 = 0 | REPACK = 1 | "


def test_the_kernels_flags_are_read_for_x86_and_arm() -> None:
    assert {"amx_int8", "amx_tile", "avx512f"} <= parse_cpu_flags(SAPPHIRE_RAPIDS)
    assert "avx2" in parse_cpu_flags(EPYC) and not has_amx(parse_cpu_flags(EPYC))
    assert "sve" in parse_cpu_flags(GRAVITON)
    assert parse_cpu_flags("") == frozenset()


def test_llama_cpps_own_report_counts_only_what_is_on() -> None:
    assert llama_cpu_flags(LLAMA_INFO_AMX) >= {"amx_int8", "avx2", "repack"}
    assert "avx512" not in llama_cpu_flags(LLAMA_INFO_AVX2)
    assert not has_amx(llama_cpu_flags(LLAMA_INFO_AVX2))


@pytest.mark.parametrize(
    ("cpuinfo", "llama_info", "auto"),
    [
        (SAPPHIRE_RAPIDS, LLAMA_INFO_AMX, False),
        (SAPPHIRE_RAPIDS, LLAMA_INFO_AVX2, False),  # a build without AMX on an AMX CPU: still off
        ("", LLAMA_INFO_AMX, False),  # no /proc/cpuinfo (macOS): llama.cpp's word is enough
        (EPYC, LLAMA_INFO_AVX2, True),
        (GRAVITON, "CPU : NEON = 1 | ARM_FMA = 1 | ", True),
    ],
)
def test_auto_turns_the_extra_buffers_off_exactly_where_there_is_amx(
    cpuinfo: str, llama_info: str, auto: bool
) -> None:
    flags = parse_cpu_flags(cpuinfo) | llama_cpu_flags(llama_info)
    assert use_extra_buffers("auto", flags) is auto
    assert use_extra_buffers("on", flags) is True
    assert use_extra_buffers("off", flags) is False


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, on, off"):
        use_extra_buffers("sometimes", frozenset())


def test_this_machines_flags_include_the_kernels_list(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(SAPPHIRE_RAPIDS)
    assert has_amx(read_cpu_flags(fake))
    assert isinstance(read_cpu_flags(tmp_path / "absent"), frozenset)
