"""The dataset library's service, built from the database and the Files API's storage."""

from __future__ import annotations

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.datasets.repository import DatasetRepository
from tokenmill.datasets.service import DatasetService
from tokenmill.datasets.tokenizers import library_tokenizers
from tokenmill.files.service import FileService
from tokenmill.store.db import Database


def build_datasets(db: Database, clock: Clock, files: FileService) -> DatasetService:
    tokenizers = library_tokenizers(ModelRepository(db, clock))
    return DatasetService(DatasetRepository(db, clock), files, tokenizers, clock)
