"""Evaluations on a gateway: the /admin/v1/evals API and the workers that run them, each
model call sent through the router as the evaluation's key (``gateway.eval_calls``)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.control.keys import KeyRepository
from tokenmill.evals.execution import KIND, eval_handler
from tokenmill.evals.repository import EvalRepository
from tokenmill.evals.service import EvalService
from tokenmill.evals.sources import dataset_split_reader, source_reader
from tokenmill.files.service import FileService
from tokenmill.store.db import Database
from tokenmill.work.background import ThreadedWorker
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

if TYPE_CHECKING:
    from tokenmill.gateway.services import Services


def add_evals(
    services: Services, db: Database, clock: Clock, files: FileService, *, workers: int
) -> None:
    from tokenmill.gateway.batch_lines import PlatformLineSender
    from tokenmill.gateway.compose import admit_line, platform_call_parts
    from tokenmill.gateway.eval_calls import PlatformEvalCalls
    from tokenmill.gateway.platform_calls import PlatformCaller

    admin = services.admin
    queue = WorkQueue(db, clock)
    repository = EvalRepository(db, clock)
    service = EvalService(repository, files, queue, clock)
    if admin is not None:
        admin.evals = service
        admin.resolve_model = services.directory.resolve
    if workers == 0:
        return
    caller = PlatformCaller(*platform_call_parts(services, db, clock))
    services.loops.append(caller)  # before the workers: its loop is bound first
    keys = KeyRepository(db, clock)
    lines = PlatformLineSender(caller, keys.principal, Fraction(1), admit_line(services.admission))
    calls = PlatformEvalCalls(
        lines, keys.principal, services.directory, ModelRepository(db, clock), clock
    )
    datasets = None if admin is None or admin.datasets is None else admin.datasets
    read = source_reader(files, None if datasets is None else dataset_split_reader(datasets))
    handler = eval_handler(repository, read, calls)
    for _ in range(workers):
        services.loops.append(ThreadedWorker(WorkRunner(queue, {KIND: handler})))
