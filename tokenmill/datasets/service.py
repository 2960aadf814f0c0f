"""The dataset library's operations: make a version from files (validated, split, counted,
stored as Parquet), read cards and pages of rows, publish, delete.

Who reads is a tenant id, or ``None`` for a platform admin. Making a version:
1. the files are read and validated (``tuning.validation``), counted with the tokenizer of
   the model named (``datasets.tokenizers``), split (``datasets.content``);
2. the same content under the same name is the version it already is: nothing is written;
3. otherwise the Parquet bytes go to the Files API's storage, under the owner's tenant, then
   the version is recorded (``datasets.repository``); a version that lost a race to the same
   content takes its bytes away again.
"""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenmill.clock import Clock
from tokenmill.datasets.content import DatasetContent, Split, SplitPlan, build_content, canonical
from tokenmill.datasets.objects import (
    DatasetInfo,
    DatasetVersionInfo,
    check_page,
    name_from_filename,
    new_version_id,
)
from tokenmill.datasets.parquet import Rows, encode
from tokenmill.datasets.repository import Added, DatasetRepository
from tokenmill.datasets.tokenizers import Tokenizer, TokenizerLookup
from tokenmill.errors import Conflict, NotFound, PermissionDenied
from tokenmill.files.service import FileService
from tokenmill.tuning.validation import Example, ValidationReport, validate

Progress = Callable[[int, int], None]  # examples counted, lines in all
CACHED_VERSIONS = 8  # decoded versions kept in memory (they never change)
MIN_EXAMPLES = 1


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a version's card tells of where it came from."""

    created_by: str  # a key id, or "cli"
    licence: str | None = None
    source: str | None = None
    training_file_id: str | None = None


class _Counted:
    """A tokenizer's counts remembered by content: the validator and the split ask once."""

    def __init__(self, tokenizer: Tokenizer, total: int, progress: Progress | None) -> None:
        self._tokenizer = tokenizer
        self._total = total
        self._progress = progress
        self._seen: dict[bytes, int] = {}

    def __call__(self, example: Example) -> int:
        key = canonical(example)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = int(self._tokenizer.count(example))
        if self._progress is not None:
            self._progress(len(self._seen), self._total)
        return found


class DatasetService:
    def __init__(
        self,
        repository: DatasetRepository,
        files: FileService,
        tokenizers: TokenizerLookup,
        clock: Clock,
    ) -> None:
        self.repository = repository
        self.files = files
        self.tokenizers = tokenizers
        self._clock = clock
        self._decoded: OrderedDict[str, Rows] = OrderedDict()
        self._decoded_lock = threading.Lock()

    def create(
        self,
        tenant_id: str,
        provenance: Provenance,
        *,
        file_id: str,
        model: str,
        name: str | None = None,
        plan: SplitPlan | None = None,
        progress: Progress | None = None,
    ) -> Added:
        """A version of the tenant's dataset ``name`` (default: the file's name) made from its
        file ``file_id``, counted in ``model``'s tokens; 400 when the file is not valid."""
        plan = plan or SplitPlan()
        tokenizer = self.tokenizers(model, tenant_id)
        info, training_data = self._read(tenant_id, file_id, "file_id")
        validation_data = None
        if plan.validation_file_id is not None:
            _, validation_data = self._read(
                tenant_id, plan.validation_file_id, "validation_file_id"
            )
        lines = training_data.count(b"\n") + 1 + (validation_data or b"").count(b"\n")
        counted = _Counted(tokenizer, lines, progress)
        check = Tokenizer(tokenizer.name, counted, tokenizer.context_tokens)
        training = self._validate(training_data, check)
        validation = None if validation_data is None else self._validate(validation_data, check)
        content = build_content(training, validation, plan, counted)
        provenance = Provenance(
            provenance.created_by, provenance.licence, provenance.source, info.id
        )
        return self.record(
            tenant_id, name or name_from_filename(info.filename), content, tokenizer, provenance
        )

    def from_reports(
        self,
        tenant_id: str,
        name: str,
        training: ValidationReport,
        validation: ValidationReport | None,
        tokenizer: Tokenizer,
        provenance: Provenance,
        validation_file_id: str | None = None,
    ) -> Added:
        """A version from files already validated (a fine-tuning job's): no split of the
        training file; a validation file, when there is one, is the validation split."""
        plan = SplitPlan(validation_fraction=0.0, validation_file_id=validation_file_id)
        content = build_content(training, validation, plan, tokenizer.count)
        return self.record(tenant_id, name, content, tokenizer, provenance)

    def record(
        self,
        tenant_id: str,
        name: str,
        content: DatasetContent,
        tokenizer: Tokenizer,
        provenance: Provenance,
    ) -> Added:
        found = self.repository.find(tenant_id, name, content.sha256)
        if found is not None:
            return Added(self.repository.get(tenant_id, found.dataset_id), found, False)
        version_id = new_version_id()
        data = encode(content.rows)
        writer = self.files.storage.writer(tenant_id, version_id)
        try:
            writer.write(data)
            writer.commit()
        finally:
            writer.abort()  # a no-op once committed
        version = DatasetVersionInfo(
            id=version_id,
            dataset_id="",  # filled in by the repository
            version=0,
            sha256=content.sha256,
            format=content.format,
            rows=content.count(),
            train_rows=content.count("train"),
            validation_rows=content.count("validation"),
            tokens=content.tokens(),
            train_tokens=content.tokens("train"),
            validation_tokens=content.tokens("validation"),
            tokenizer=tokenizer.name,
            licence=provenance.licence,
            source=provenance.source,
            split=content.plan.as_json(),
            training_file_id=provenance.training_file_id,
            blob=version_id,
            size_bytes=len(data),
            published_at=None,
            created_by=provenance.created_by,
            created_at=self._clock.utcnow(),
        )
        try:
            added = self.repository.add(tenant_id, name, version)
        except BaseException:
            self.files.storage.delete(tenant_id, version_id)
            raise
        if not added.created:
            self.files.storage.delete(tenant_id, version_id)
        return added

    def _read(self, tenant_id: str, file_id: str, param: str) -> tuple[Any, bytes]:
        try:
            info, chunks = self.files.content(tenant_id, file_id)
        except NotFound as missing:
            raise NotFound(missing.message, param=param) from None
        return info, b"".join(chunks)

    @staticmethod
    def _validate(data: bytes, tokenizer: Tokenizer) -> ValidationReport:
        return validate(
            data,
            count_tokens=tokenizer.count,
            context_length=tokenizer.context_tokens,
            min_examples=MIN_EXAMPLES,
            epochs=1,
        )

    # reads

    def list(self, reader: str | None) -> builtins.list[DatasetInfo]:
        return self.repository.list(reader)

    def get(self, reader: str | None, dataset_id: str) -> DatasetInfo:
        return self.repository.get(reader, dataset_id)

    def version(
        self, reader: str | None, dataset_id: str, number: int
    ) -> tuple[DatasetInfo, DatasetVersionInfo]:
        dataset = self.repository.get(reader, dataset_id)
        return dataset, self.repository.version(reader, dataset_id, number)

    def rows(self, dataset: DatasetInfo, version: DatasetVersionInfo) -> Rows:
        """The version's rows, decoded from its Parquet file (kept for the next page)."""
        with self._decoded_lock:
            found = self._decoded.get(version.id)
        if found is None:
            try:
                chunks = self.files.storage.read(dataset.tenant_id, version.blob)
                found = Rows.decode(b"".join(chunks))
            except FileNotFoundError:
                raise NotFound(
                    f"The rows of {dataset.id} version {version.version} are missing.",
                    code="not_found",
                ) from None
        with self._decoded_lock:
            self._decoded[version.id] = found
            self._decoded.move_to_end(version.id)
            while len(self._decoded) > CACHED_VERSIONS:
                self._decoded.popitem(last=False)
        return found

    def page(
        self,
        reader: str | None,
        dataset_id: str,
        number: int,
        split: Split,
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        check_page(offset, limit)
        dataset, version = self.version(reader, dataset_id, number)
        rows = self.rows(dataset, version)
        total = version.train_rows if split == "train" else version.validation_rows
        data = rows.page(split, offset, limit)
        return {
            "object": "list",
            "dataset_id": dataset.id,
            "version": version.version,
            "split": split,
            "offset": offset,
            "limit": limit,
            "total": total,
            "data": data,
            "has_more": offset + len(data) < total,
        }

    # changes

    def publish(self, dataset_id: str, number: int) -> tuple[DatasetInfo, DatasetVersionInfo]:
        """For a platform admin: every tenant may read the version from now on."""
        self.repository.version(None, dataset_id, number)
        published = self.repository.publish(dataset_id, number)
        return self.repository.get(None, dataset_id), published

    def delete_version(
        self, reader: str | None, dataset_id: str, number: int
    ) -> DatasetVersionInfo:
        dataset = self._owned(reader, dataset_id)
        version = self.repository.version(reader, dataset_id, number)
        if version.published and reader is not None:
            raise Conflict(
                f"Version {number} of '{dataset.name}' is published: other tenants may use it, "
                "so only a platform admin deletes it.",
                code="dataset_published",
            )
        removed = self.repository.delete_version(dataset_id, number)
        self._forget(dataset.tenant_id, [removed])
        return removed

    def delete(self, reader: str | None, dataset_id: str) -> DatasetInfo:
        dataset = self._owned(reader, dataset_id)
        if reader is not None and any(v.published for v in dataset.versions):
            raise Conflict(
                f"'{dataset.name}' has published versions: only a platform admin deletes it.",
                code="dataset_published",
            )
        self._forget(dataset.tenant_id, self.repository.delete(dataset_id))
        return dataset

    def _owned(self, reader: str | None, dataset_id: str) -> DatasetInfo:
        dataset = self.repository.get(reader, dataset_id)
        if reader is not None and dataset.tenant_id != reader:
            raise PermissionDenied(f"The dataset '{dataset.name}' is another tenant's.")
        return dataset

    def _forget(self, tenant_id: str, versions: builtins.list[DatasetVersionInfo]) -> None:
        for version in versions:
            with self._decoded_lock:
                self._decoded.pop(version.id, None)
            self.files.storage.delete(tenant_id, version.blob)
