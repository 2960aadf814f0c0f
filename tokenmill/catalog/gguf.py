"""Read what a GGUF model file says about itself, without loading it.

The reader follows llama.cpp's own loader (``gguf.cpp``) closely enough that a file it accepts
is one llama.cpp will open: same versions, same limits on names and dimensions, tensors laid out
back to back at the file's alignment, and all tensor data inside the file. Anything else is an
``InvalidArtifact`` naming the first problem found. Tensor data is never read, so a multi-GB
file is checked in milliseconds; a corrupt header cannot make it allocate more than the file's
own size.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmill.catalog.ggml_types import (
    FILE_TYPES,
    GGML_TYPES,
    SUPPORTED_ARCHITECTURES,
)
from tokenmill.errors import InvalidArtifact

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_KEY_BYTES = 65_536
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME is 64, with the terminating NUL
MAX_DIMS = 4
_INT64_MAX = 2**63 - 1

# GGUF value types: id -> (struct format, size) for the fixed-size ones.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_INTEGER_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
# Arrays worth decoding; the rest (vocabularies, merges, scores) are only counted and skipped.
_DECODED_ARRAYS = frozenset({"general.languages", "general.tags"})


@dataclass(frozen=True, slots=True)
class GgufInfo:
    path: Path
    file_size_bytes: int
    gguf_version: int
    architecture: str
    name: str | None
    basename: str | None
    size_label: str | None
    description: str | None
    author: str | None
    organization: str | None
    finetune: str | None
    license: str | None
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    parameters: int
    context_tokens: int
    embedding_length: int | None
    block_count: int | None
    vocab_size: int | None
    quantization: str
    tensor_count: int
    tensor_types: dict[str, int] = field(hash=False)
    chat_template: str | None
    alignment: int
    data_offset: int


def read_gguf(path: str | os.PathLike[str]) -> GgufInfo:
    """Validate ``path`` as a GGUF llama.cpp can serve and return what its header says."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size < 4:
                raise InvalidArtifact(f"{path.name}: not a GGUF file (only {size} bytes).")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                return _parse(path, buffer, size)
    except OSError as error:
        raise InvalidArtifact(f"{path.name}: cannot read the file: {error.strerror}.") from None


def sha256_file(
    path: str | os.PathLike[str],
    on_progress: Callable[[int, int], None] | None = None,
    *,
    chunk_bytes: int = 1 << 20,
) -> str:
    """The file's SHA-256 as hex, read in chunks; ``on_progress(done_bytes, total_bytes)``."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        total = os.fstat(file.fileno()).st_size
        done = 0
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, total)
    return digest.hexdigest()


class _Cursor:
    """Bounds-checked reads from the mapped file; running past the end is a truncation."""

    def __init__(self, path: Path, buffer: mmap.mmap, size: int) -> None:
        self.path = path
        self.name = path.name
        self.buffer = buffer
        self.size = size
        self.pos = 0

    def fail(self, message: str) -> InvalidArtifact:
        return InvalidArtifact(f"{self.name}: {message}")

    def need(self, count: int, what: str) -> int:
        if count > self.size - self.pos:
            raise self.fail(f"truncated {what} at byte {self.pos} (file is {self.size} bytes).")
        start = self.pos
        self.pos += count
        return start

    def scalar(self, fmt: str, width: int, what: str) -> Any:
        return struct.unpack_from(fmt, self.buffer, self.need(width, what))[0]

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", 4, what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", 8, what))

    def string(self, what: str, limit: int | None = None) -> str:
        length = self.u64(f"{what} length")
        if limit is not None and length > limit:
            raise self.fail(f"{what} is {length} bytes long (at most {limit} allowed).")
        start = self.need(length, what)
        return self.buffer[start : start + length].decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str) -> None:
        buffer, size, pos = self.buffer, self.size, self.pos
        for _ in range(count):
            if size - pos < 8:
                self.pos = pos
                self.need(8, what)
            (length,) = struct.unpack_from("<Q", buffer, pos)
            pos += 8
            if length > size - pos:
                self.pos = pos
                self.need(length, what)
            pos += length
        self.pos = pos


def _parse(path: Path, buffer: mmap.mmap, size: int) -> GgufInfo:
    cursor = _Cursor(path, buffer, size)
    magic = bytes(buffer[:4])
    if magic != MAGIC:
        raise cursor.fail(f"not a GGUF file ({_describe_foreign(bytes(buffer[:32]))}).")
    cursor.pos = 4
    version = cursor.u32("version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and version >> 24 in SUPPORTED_VERSIONS:
            raise cursor.fail("big-endian GGUF; llama.cpp here reads little-endian files only.")
        raise cursor.fail(f"unsupported GGUF version {version} (supported: 2 and 3).")
    tensor_count = cursor.u64("tensor count")
    kv_count = cursor.u64("metadata count")
    # Smallest possible entries: a kv is 8+4+1 bytes, a tensor info 8+4+4+8.
    if kv_count * 13 + tensor_count * 24 > size - cursor.pos:
        raise cursor.fail(
            f"truncated header: it claims {kv_count} metadata entries and {tensor_count} tensors, "
            f"more than {size} bytes can hold."
        )
    metadata, array_lengths = _read_metadata(cursor, kv_count)
    return _build(cursor, version, tensor_count, metadata, array_lengths)


def _read_metadata(cursor: _Cursor, count: int) -> tuple[dict[str, Any], dict[str, int]]:
    metadata: dict[str, Any] = {}
    types: dict[str, int] = {}
    array_lengths: dict[str, int] = {}
    for index in range(count):
        key = cursor.string(f"metadata key #{index}", MAX_KEY_BYTES)
        if key in types:
            raise cursor.fail(f"duplicate metadata key '{key}'.")
        value_type = cursor.u32(f"type of '{key}'")
        types[key] = value_type
        if value_type == _ARRAY:
            element_type = cursor.u32(f"element type of '{key}'")
            length = cursor.u64(f"length of '{key}'")
            array_lengths[key] = length
            value = _read_array(cursor, key, element_type, length)
        else:
            value = _read_value(cursor, key, value_type)
        if value is not None:
            metadata[key] = value
    metadata["\0types"] = types
    return metadata, array_lengths


def _read_value(cursor: _Cursor, key: str, value_type: int) -> Any:
    if value_type == _STRING:
        return cursor.string(f"value of '{key}'")
    if value_type in _SCALARS:
        fmt, width = _SCALARS[value_type]
        return cursor.scalar(fmt, width, f"value of '{key}'")
    raise cursor.fail(f"metadata '{key}' has unknown value type {value_type}.")


def _read_array(cursor: _Cursor, key: str, element_type: int, length: int) -> Any:
    what = f"array '{key}'"
    if element_type == _STRING:
        if length * 8 > cursor.size - cursor.pos:
            raise cursor.fail(f"{what} claims {length} strings, more than the file holds.")
        if key in _DECODED_ARRAYS:
            return tuple(cursor.string(what) for _ in range(length))
        cursor.skip_strings(length, what)
        return None
    if element_type not in _SCALARS:
        raise cursor.fail(f"{what} has unsupported element type {element_type}.")
    fmt, width = _SCALARS[element_type]
    start = cursor.need(length * width, what)
    if key in _DECODED_ARRAYS:
        return tuple(v for (v,) in struct.iter_unpack(fmt, cursor.buffer[start : cursor.pos]))
    return None


def _build(
    cursor: _Cursor,
    version: int,
    tensor_count: int,
    metadata: dict[str, Any],
    array_lengths: dict[str, int],
) -> GgufInfo:
    types: dict[str, int] = metadata.pop("\0types")

    def get(key: str, kind: str) -> Any:
        value_type = types.get(key)
        if value_type is None or (value_type == _STRING) == (kind == "str"):
            if kind == "int" and value_type is not None and value_type not in _INTEGER_TYPES:
                raise cursor.fail(f"metadata '{key}' should be an integer, is type {value_type}.")
            return metadata.get(key)
        raise cursor.fail(f"metadata '{key}' should be a {kind}, is GGUF type {value_type}.")

    architecture = get("general.architecture", "str")
    if architecture is None:
        raise cursor.fail("no general.architecture in the metadata.")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise cursor.fail(
            f"unknown architecture '{architecture}': llama.cpp (llama-cpp-python 0.3.36) "
            "cannot run it."
        )
    alignment = get("general.alignment", "int")
    if alignment is None:
        alignment = DEFAULT_ALIGNMENT
    elif types["general.alignment"] != 4 or alignment <= 0 or alignment & (alignment - 1):
        raise cursor.fail(f"general.alignment {alignment} is not a power-of-two uint32.")
    tensor_types, parameters, data_size = _read_tensor_infos(cursor, tensor_count, alignment)
    data_offset = -(-cursor.pos // alignment) * alignment
    if data_offset + data_size > cursor.size:
        raise cursor.fail(
            f"truncated tensor data: tensors end at byte {data_offset + data_size}, "
            f"the file has {cursor.size} bytes."
        )
    context_tokens = get(f"{architecture}.context_length", "int")
    if context_tokens is None or context_tokens <= 0:
        raise cursor.fail(f"no positive {architecture}.context_length in the metadata.")
    file_type = get("general.file_type", "int")
    if file_type in FILE_TYPES:
        quantization = FILE_TYPES[file_type]
    elif tensor_types:
        quantization = max(tensor_types.items(), key=lambda item: item[1])[0]
    else:
        quantization = "unknown"
    return GgufInfo(
        path=cursor.path,
        file_size_bytes=cursor.size,
        gguf_version=version,
        architecture=architecture,
        name=get("general.name", "str"),
        basename=get("general.basename", "str"),
        size_label=get("general.size_label", "str"),
        description=get("general.description", "str"),
        author=get("general.author", "str"),
        organization=get("general.organization", "str"),
        finetune=get("general.finetune", "str"),
        license=get("general.license", "str"),
        languages=_strings(metadata.get("general.languages")),
        tags=_strings(metadata.get("general.tags")),
        parameters=parameters,
        context_tokens=context_tokens,
        embedding_length=get(f"{architecture}.embedding_length", "int"),
        block_count=get(f"{architecture}.block_count", "int"),
        vocab_size=array_lengths.get("tokenizer.ggml.tokens"),
        quantization=quantization,
        tensor_count=tensor_count,
        tensor_types=dict(tensor_types),
        chat_template=get("tokenizer.chat_template", "str"),
        alignment=alignment,
        data_offset=data_offset,
    )


def _read_tensor_infos(
    cursor: _Cursor, count: int, alignment: int
) -> tuple[Counter[str], int, int]:
    """Returns tensor-type counts, total elements, and the end of the last tensor's data."""
    names: set[str] = set()
    type_counts: Counter[str] = Counter()
    parameters = 0
    expected_offset = 0
    end = 0
    for index in range(count):
        name = cursor.string(f"name of tensor #{index}", MAX_TENSOR_NAME_BYTES)
        if name in names:
            raise cursor.fail(f"duplicate tensor '{name}'.")
        names.add(name)
        n_dims = cursor.u32(f"dimension count of '{name}'")
        if n_dims > MAX_DIMS:
            raise cursor.fail(f"tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS}).")
        dims = [cursor.scalar("<q", 8, f"shape of '{name}'") for _ in range(n_dims)]
        elements = 1
        for dim in dims:
            if dim < 0:
                raise cursor.fail(f"tensor '{name}' has a negative dimension {dims}.")
            elements *= dim
            if elements > _INT64_MAX:
                raise cursor.fail(f"tensor '{name}' shape {dims} overflows 64 bits.")
        type_id = cursor.u32(f"type of '{name}'")
        ggml_type = GGML_TYPES.get(type_id)
        if ggml_type is None:
            raise cursor.fail(f"tensor '{name}' has unknown ggml type {type_id}.")
        row = dims[0] if dims else 1
        if row % ggml_type.block_elements:
            raise cursor.fail(
                f"tensor '{name}' rows of {row} do not fill {ggml_type.name} blocks "
                f"of {ggml_type.block_elements}."
            )
        offset = cursor.u64(f"offset of '{name}'")
        if offset != expected_offset:
            raise cursor.fail(
                f"tensor '{name}' data is at offset {offset}, expected {expected_offset}."
            )
        nbytes = (elements // ggml_type.block_elements) * ggml_type.block_bytes
        end = offset + nbytes
        expected_offset = -(-end // alignment) * alignment
        type_counts[ggml_type.name] += 1
        parameters += elements
    return type_counts, parameters, end


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, tuple):
        return ()
    return tuple(value for value in values if isinstance(value, str))


def _describe_foreign(head: bytes) -> str:
    """A hint at what the file is instead, from its first bytes."""
    if len(head) >= 9 and head[8:9] == b"{":
        return "looks like a safetensors file"
    if head.startswith(b"PK\x03\x04"):
        return "looks like a zip archive, e.g. a PyTorch checkpoint"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] in range(2, 6):
        return "looks like a Python pickle"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the file it points to"
    if head.isascii():
        return "looks like a text file"
    return "does not start with b'GGUF'"
