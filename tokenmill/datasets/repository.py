"""The ``datasets`` and ``dataset_versions`` tables.

Reads take the reader's tenant (``None``: a platform admin, who sees everything): a tenant
sees all versions of its own datasets and the published versions of others'; a dataset it
sees nothing of is, to it, no dataset at all (404). Adding a version locks the dataset's name,
so two gateways adding the same content at once make one version, and different content the
next two numbers.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenmill.clock import Clock
from tokenmill.datasets.objects import (
    DatasetInfo,
    DatasetVersionInfo,
    new_dataset_id,
    no_such_dataset,
    no_such_version,
)
from tokenmill.store.dataset_tables import Dataset, DatasetVersion
from tokenmill.store.db import Database

_VERSION_COLUMNS = tuple(f.name for f in fields(DatasetVersionInfo))


@dataclass(frozen=True, slots=True)
class Added:
    dataset: DatasetInfo  # as its owner sees it, the new version included
    version: DatasetVersionInfo
    created: bool  # False: the same content was already a version of the dataset


def _version(row: DatasetVersion) -> DatasetVersionInfo:
    return DatasetVersionInfo(**{name: getattr(row, name) for name in _VERSION_COLUMNS})


def _sees(reader: str | None, owner: str, version: DatasetVersion) -> bool:
    return reader is None or reader == owner or version.published_at is not None


class DatasetRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def find(self, tenant_id: str, name: str, sha256: str) -> DatasetVersionInfo | None:
        """The tenant's version of ``name`` with this content, if there is one."""
        query = (
            select(DatasetVersion)
            .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
            .where(
                Dataset.tenant_id == tenant_id,
                Dataset.name == name,
                DatasetVersion.sha256 == sha256,
            )
        )
        with self._db.session() as session:
            row = session.scalars(query).one_or_none()
            return _version(row) if row is not None else None

    def add(self, tenant_id: str, name: str, version: DatasetVersionInfo) -> Added:
        """Records ``version`` (its ``dataset_id`` and ``version`` are filled in here) as the
        next version of the tenant's dataset ``name``, made when missing; when the dataset
        already has the same content, that version is returned instead (``created`` False)."""
        with self._db.session() as session:
            self._db.lock(session, f"datasets:{tenant_id}:{name}")
            dataset = session.scalars(
                select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.name == name)
            ).one_or_none()
            if dataset is None:
                dataset = Dataset(
                    id=new_dataset_id(),
                    tenant_id=tenant_id,
                    name=name,
                    next_version=1,
                    created_by=version.created_by,
                    created_at=self._clock.utcnow(),
                )
                session.add(dataset)
                session.flush()
            same = session.scalars(
                select(DatasetVersion).where(
                    DatasetVersion.dataset_id == dataset.id,
                    DatasetVersion.sha256 == version.sha256,
                )
            ).one_or_none()
            created = same is None
            if same is None:
                values = {name: getattr(version, name) for name in _VERSION_COLUMNS}
                values.update(dataset_id=dataset.id, version=dataset.next_version)
                same = DatasetVersion(**values)
                dataset.next_version += 1
                session.add(same)
                session.flush()
            info = self._dataset(session, dataset, tenant_id)
            assert info is not None  # its owner always sees a dataset
            return Added(info, _version(same), created)

    def get(self, reader: str | None, dataset_id: str) -> DatasetInfo:
        with self._db.session() as session:
            row = session.get(Dataset, dataset_id)
            info = self._dataset(session, row, reader) if row is not None else None
        if info is None:
            raise no_such_dataset(dataset_id)
        return info

    def by_name(self, tenant_id: str, name: str) -> DatasetInfo:
        """The tenant's own dataset called ``name``."""
        with self._db.session() as session:
            row = session.scalars(
                select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.name == name)
            ).one_or_none()
            if row is None:
                raise no_such_dataset(name)
            info = self._dataset(session, row, tenant_id)
        assert info is not None  # its owner always sees a dataset
        return info

    def list(self, reader: str | None) -> builtins.list[DatasetInfo]:
        """Every dataset the reader sees, its own first, then by name."""
        query = select(Dataset)
        if reader is not None:
            published = select(DatasetVersion.dataset_id).where(
                DatasetVersion.published_at.is_not(None)
            )
            query = query.where((Dataset.tenant_id == reader) | Dataset.id.in_(published))
        with self._db.session() as session:
            rows = builtins.list(session.scalars(query.order_by(Dataset.name, Dataset.id)))
            found = [self._dataset(session, row, reader) for row in rows]
        shown = [d for d in found if d is not None]
        return sorted(shown, key=lambda d: d.tenant_id != reader)

    def version(self, reader: str | None, dataset_id: str, number: int) -> DatasetVersionInfo:
        dataset = self.get(reader, dataset_id)
        found = next((v for v in dataset.versions if v.version == number), None)
        if found is None:
            raise no_such_version(dataset_id, number)
        return found

    def publish(self, dataset_id: str, number: int) -> DatasetVersionInfo:
        """Marks a version published (once: publishing again keeps the first time)."""
        with self._db.session() as session:
            row = self._version_row(session, dataset_id, number)
            if row.published_at is None:
                row.published_at = self._clock.utcnow()
            return _version(row)

    def delete_version(self, dataset_id: str, number: int) -> DatasetVersionInfo:
        with self._db.session() as session:
            row = self._version_row(session, dataset_id, number)
            session.delete(row)
            return _version(row)

    def delete(self, dataset_id: str) -> builtins.list[DatasetVersionInfo]:
        """Removes the dataset and every version; returns the versions removed."""
        with self._db.session() as session:
            row = session.get(Dataset, dataset_id)
            if row is None:
                raise no_such_dataset(dataset_id)
            versions = self._versions(session, dataset_id)
            for version in versions:
                session.delete(version)
            session.flush()
            session.delete(row)
            return [_version(v) for v in versions]

    def _version_row(self, session: Session, dataset_id: str, number: int) -> DatasetVersion:
        row = session.scalars(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == number)
            .with_for_update()
        ).one_or_none()
        if row is None:
            raise no_such_version(dataset_id, number)
        return row

    @staticmethod
    def _versions(session: Session, dataset_id: str) -> builtins.list[DatasetVersion]:
        query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
        return builtins.list(session.scalars(query.order_by(DatasetVersion.version)))

    def _dataset(self, session: Session, row: Dataset, reader: str | None) -> DatasetInfo | None:
        """The dataset as ``reader`` sees it, or None when it sees none of it."""
        versions: Iterable[DatasetVersion] = self._versions(session, row.id)
        seen = tuple(_version(v) for v in versions if _sees(reader, row.tenant_id, v))
        if not seen and reader not in (None, row.tenant_id):
            return None
        return DatasetInfo(row.id, row.tenant_id, row.name, row.created_by, row.created_at, seen)
