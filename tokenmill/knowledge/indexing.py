"""Indexing a vector store file: extract its text, chunk it, embed the chunks, store them.

``index_file`` is the pipeline, with no I/O of its own: bytes in, chunks with their vectors
out (extract → chunk → embed in batches), the embedding function injected (the platform
passes one that calls its own embeddings deployment, metered to the tenant). A file that cannot
be indexed raises ``IndexingFailure`` with OpenAI's ``last_error`` code: ``unsupported_file``
(a format we do not read, binary bytes, a damaged or encrypted PDF) or ``invalid_file`` (a
readable file with no text). An embedding function that misbehaves is a ``server_error``.

``index_handler`` builds the work-queue handler for kind ``vector_store.file``: it loads the
file from the Files API's storage, runs the pipeline (reporting progress after each batch),
and writes all the chunks in one transaction. A failure leaves no chunks: the file is marked
``failed`` with its ``last_error`` at once when another attempt would fail the same way, and on
the last attempt otherwise (an embeddings deployment that was down gets the queue's retries).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.files.repository import FileRepository
from tokenmill.files.storage import FileStorage
from tokenmill.knowledge.chunking import ChunkingStrategy, Tokenizer, split
from tokenmill.knowledge.extract import extract
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.stores import NewChunk
from tokenmill.work.items import WorkItem
from tokenmill.work.runner import Handler, PermanentFailure, WorkContext, WorkStopped

KIND = "vector_store.file"
DEFAULT_EMBED_BATCH = 32

Embed = Callable[[list[str]], list[list[float]]]
"""Texts in, one vector per text out, in order."""


class IndexingFailure(Exception):
    """Why a file cannot be indexed, as a vector store file's ``last_error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def vector_bytes(vector: list[float], dimensions: int | None = None) -> bytes:
    """A vector as little-endian float32 bytes; refuses a wrong width or a non-finite value."""
    if dimensions is not None and len(vector) != dimensions:
        raise IndexingFailure(
            "server_error",
            f"The embedding model returned vectors of {len(vector)} and {dimensions} dimensions.",
        )
    if not vector or not all(math.isfinite(v) for v in vector):
        raise IndexingFailure("server_error", "The embedding model returned an unusable vector.")
    return np.asarray(vector, dtype="<f4").tobytes()


def index_file(
    data: bytes,
    filename: str,
    content_type: str | None,
    strategy: ChunkingStrategy,
    tokenizer: Tokenizer,
    embed: Embed,
    *,
    batch_size: int = DEFAULT_EMBED_BATCH,
    progress: Callable[[float], None] | None = None,
) -> list[NewChunk]:
    """The file's chunks, each with its embedding; ``progress`` hears the fraction embedded."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    try:
        text = extract(data, filename, content_type).text
    except InvalidRequest as refused:
        code = "unsupported_file" if refused.code == "unsupported_file" else "invalid_file"
        raise IndexingFailure(code, refused.message) from refused
    chunks = split(text, tokenizer, strategy)
    if not chunks:
        raise IndexingFailure("invalid_file", f"No text found in {filename!r}.")
    made: list[NewChunk] = []
    dimensions: int | None = None
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        vectors = embed([c.text for c in batch])
        if len(vectors) != len(batch):
            raise IndexingFailure(
                "server_error",
                f"The embedding model returned {len(vectors)} vectors for {len(batch)} chunks.",
            )
        for chunk, vector in zip(batch, vectors, strict=True):
            dimensions = dimensions or len(vector)
            made.append(
                NewChunk(
                    position=chunk.index,
                    text=chunk.text,
                    char_start=chunk.start,
                    char_end=chunk.end,
                    token_count=chunk.tokens,
                    embedding=vector_bytes(vector, dimensions),
                )
            )
        if progress is not None:
            progress(len(made) / len(chunks))
    return made


def strategy_of(body: Mapping[str, Any]) -> ChunkingStrategy:
    """A stored ``chunking_strategy`` (always the static form) as a strategy."""
    static = body["static"]
    return ChunkingStrategy(
        str(body.get("type", "static")),
        int(static["max_chunk_size_tokens"]),
        int(static["chunk_overlap_tokens"]),
    )


def index_handler(
    stores: VectorStoreRepository,
    files: FileRepository,
    storage: FileStorage,
    tokenizer: Tokenizer,
    embed: Embed,
    *,
    batch_size: int = DEFAULT_EMBED_BATCH,
) -> Handler:
    """The handler of ``vector_store.file`` work: payload ``{vector_store_id, file_id}``."""

    def handle(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        tenant_id = item.tenant_id or str(item.payload["tenant_id"])
        store_id = str(item.payload["vector_store_id"])
        file_id = str(item.payload["file_id"])
        try:
            entry = stores.get_file(tenant_id, store_id, file_id)
        except NotFound:
            return {"indexed": False, "reason": "the file left the vector store"}
        if entry.status != "in_progress":
            return {"indexed": False, "reason": f"the file is {entry.status}"}

        def fail(code: str, message: str) -> None:
            stores.mark_failed(tenant_id, store_id, file_id, code, message)

        upload = files.get(tenant_id, file_id)
        if upload is None:
            fail("invalid_file", f"The file {file_id} was deleted before it was indexed.")
            raise PermanentFailure(f"file {file_id} is gone")
        try:
            data = b"".join(storage.read(tenant_id, file_id))
            context.check()
            chunks = index_file(
                data,
                upload.filename,
                None,
                strategy_of(entry.chunking_strategy),
                tokenizer,
                embed,
                batch_size=batch_size,
                progress=lambda done: context.progress(0.95 * done),
            )
        except IndexingFailure as failure:
            fail(failure.code, failure.message)
            raise PermanentFailure(f"{failure.code}: {failure.message}") from failure
        except FileNotFoundError as missing:
            fail("server_error", f"The bytes of {file_id} are missing from the file store.")
            raise PermanentFailure(str(missing)) from missing
        except WorkStopped:
            raise  # cancelled, or another worker has the item now: leave the file to it
        except Exception as error:
            if item.attempts >= item.max_attempts:
                fail("server_error", f"Indexing failed: {type(error).__name__}: {error}")
            raise
        saved = stores.save_chunks(tenant_id, store_id, file_id, chunks)
        context.progress(1.0, f"indexed {upload.filename}: {len(chunks)} chunks")
        return {"indexed": saved, "chunks": len(chunks)}

    return handle
