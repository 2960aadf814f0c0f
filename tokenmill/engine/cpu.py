"""Where llama.cpp may keep a model's weights on this CPU: the extra buffers, or not.

llama.cpp's CPU backend offers *extra buffer types* besides plain host memory: on x86 the
repacked layouts (Q4_0, IQ4_NL and Q4_K weights interleaved for AVX2/AVX-512 kernels) and, on
CPUs with AMX (Intel Sapphire Rapids and later), the AMX buffer. A natively built llama.cpp
repacks Q4_K, Q4_1 and other types into the AMX buffer and then segfaults in
``ggml_backend_amx_mul_mat`` on the first decode (llama.cpp issue #20824, no upstream fix).
Loading with ``use_extra_bufts = False`` keeps every weight in host memory, which avoids it.

``auto`` therefore turns the extra buffers off exactly where the CPU has AMX, and keeps them
(and their faster repacked kernels, where a type has them) everywhere else. ``on`` and ``off``
force either way.
"""

from __future__ import annotations

from pathlib import Path

EXTRA_BUFFER_CHOICES = ("auto", "on", "off")
AMX_FLAGS = frozenset({"amx_int8", "amx_tile", "amx_bf16", "amx_fp16"})
CPUINFO = Path("/proc/cpuinfo")


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``), all CPUs."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def llama_cpu_flags(system_info: str) -> frozenset[str]:
    """Features llama.cpp's own system info reports as on (``AMX_INT8 = 1`` -> ``amx_int8``)."""
    flags = set()
    for part in system_info.split("|"):
        name, sep, value = part.rpartition("=")
        if sep and value.strip() == "1":
            flags.add(name.strip().rpartition(":")[2].strip().lower())
    return frozenset(flags)


def has_amx(flags: frozenset[str]) -> bool:
    return bool(flags & AMX_FLAGS)


def use_extra_buffers(choice: str, flags: frozenset[str]) -> bool:
    """Whether to load weights into llama.cpp's extra buffers, given the CPU's flags."""
    if choice not in EXTRA_BUFFER_CHOICES:
        known = ", ".join(EXTRA_BUFFER_CHOICES)
        raise ValueError(f"extra buffers must be one of {known}, not {choice!r}")
    if choice == "auto":
        return not has_amx(flags)
    return choice == "on"


def read_cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """This machine's CPU flags: the kernel's list, with what llama.cpp itself detected."""
    import llama_cpp

    try:
        flags = parse_cpu_flags(cpuinfo.read_text(errors="replace"))
    except OSError:
        flags = frozenset()
    info = llama_cpp.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return flags | llama_cpu_flags(text)
