"""ggml tensors read from Python: the layout of ``struct ggml_tensor``, checked against libggml.

llama.cpp hands its eval callback (``tokenmill.engine.lora``) bare ``struct ggml_tensor *``
pointers. ``GgmlTensor`` mirrors that struct as declared in the ``ggml.h`` vendored with
llama-cpp-python 0.3.36 (ggml 0.25), and ``GgmlLayout`` checks the mirror against the loaded
libggml before anything reads through it: the struct's size (``ggml_tensor_overhead`` minus
the object header), and for any tensor the name, data pointer, element and byte counts that
libggml's own accessors report. Another ggml version with another layout therefore fails
that check instead of reading garbage.

Data is read only where ``ggml_backend_buffer_is_host`` says it lives in host memory (the CPU
backend).
"""

from __future__ import annotations

import ctypes
import functools
import pathlib
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

MAX_DIMS = 4
MAX_SRC = 10
MAX_OP_PARAMS = 64
MAX_NAME = 64
OBJECT_HEADER_BYTES = 32  # struct ggml_object: offs, size, next, type, padding
TYPE_F32 = 0


class GgmlTensor(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * MAX_DIMS),
        ("nb", ctypes.c_size_t * MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


OP_OFFSET = GgmlTensor.op.offset
SRC0_OFFSET = GgmlTensor.src.offset


class LayoutMismatch(RuntimeError):
    """The ggml loaded is not the one ``GgmlTensor`` mirrors."""


class GgmlLayout:
    """libggml's accessors, to check ``GgmlTensor`` against, and the op numbers by name."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(str(pathlib.Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
        self._signatures(lib)
        self._lib = lib
        size = int(lib.ggml_tensor_overhead()) - OBJECT_HEADER_BYTES
        if size != ctypes.sizeof(GgmlTensor):
            raise LayoutMismatch(
                f"struct ggml_tensor has {size} bytes in this ggml, {ctypes.sizeof(GgmlTensor)} "
                "in tokenmill's mirror"
            )
        self.mul_mat = self.op_number("MUL_MAT")

    @functools.cache  # noqa: B019 - one instance per runner, a handful of names
    def op_number(self, name: str) -> int:
        for op in range(256):
            text = self._lib.ggml_op_name(op)
            if text == name.encode():
                return op
        raise LayoutMismatch(f"this ggml has no op {name}")

    def check(self, address: int) -> GgmlTensor:
        """The tensor at ``address``, once its fields agree with libggml's accessors (and, for
        an F32 tensor, its strides with the bytes libggml says it spans)."""
        lib, tensor = self._lib, GgmlTensor.from_address(address)
        elements = 1
        for n in tensor.ne:
            elements *= n
        read = (tensor.name, tensor.data, elements)
        expected = (
            lib.ggml_get_name(address),
            lib.ggml_get_data(address),
            lib.ggml_nelements(address),
        )
        if read != expected:
            raise LayoutMismatch(f"ggml_tensor fields read {read}, libggml says {expected}")
        if tensor.type == TYPE_F32:
            spans = 4 + sum((n - 1) * s for n, s in zip(tensor.ne, tensor.nb, strict=True))
            if spans != lib.ggml_nbytes(address):
                raise LayoutMismatch(f"{tensor.name!r}: strides {list(tensor.nb)} disagree")
        return tensor

    def on_host(self, tensor: GgmlTensor) -> bool:
        return bool(tensor.buffer) and bool(self._lib.ggml_backend_buffer_is_host(tensor.buffer))

    @staticmethod
    def _signatures(lib: Any) -> None:
        pointer = ctypes.c_void_p
        lib.ggml_tensor_overhead.restype = ctypes.c_size_t
        lib.ggml_tensor_overhead.argtypes = []
        lib.ggml_op_name.restype = ctypes.c_char_p
        lib.ggml_op_name.argtypes = [ctypes.c_int]
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_get_name.argtypes = [pointer]
        lib.ggml_get_data.restype = pointer
        lib.ggml_get_data.argtypes = [pointer]
        lib.ggml_nelements.restype = ctypes.c_int64
        lib.ggml_nelements.argtypes = [pointer]
        lib.ggml_nbytes.restype = ctypes.c_size_t
        lib.ggml_nbytes.argtypes = [pointer]
        lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
        lib.ggml_backend_buffer_is_host.argtypes = [pointer]


def rows_view(tensor: GgmlTensor) -> npt.NDArray[np.float32]:
    """An F32 tensor of 2 dimensions as a numpy ``[rows, ne[0]]`` view of its data (no copy).

    ValueError for another type, more dimensions, or elements that are not packed in a row.
    """
    columns, rows, depth, batch = tensor.ne
    if tensor.type != TYPE_F32 or depth != 1 or batch != 1 or tensor.nb[0] != 4:
        raise ValueError(
            f"{tensor.name!r}: not a 2-d F32 tensor with packed rows "
            f"(type {tensor.type}, ne {list(tensor.ne)}, nb {list(tensor.nb)})"
        )
    row_bytes = tensor.nb[1]
    size = (rows - 1) * row_bytes + columns * 4
    buffer = (ctypes.c_char * size).from_address(tensor.data)
    return np.ndarray((rows, columns), np.float32, buffer, 0, (row_bytes, 4))
