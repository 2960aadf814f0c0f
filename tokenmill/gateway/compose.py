"""Builds the gateway's ``Services`` from settings and a database: one place, used by
``tokenmill serve``, the benchmarks and the live-gateway tests alike."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from tokenmill.apps.repository import AppRepository
from tokenmill.batches.execution import KIND as BATCH
from tokenmill.batches.execution import batch_handler
from tokenmill.batches.repository import BatchRepository
from tokenmill.batches.service import BatchService
from tokenmill.billing.counters import BudgetCounters, LocalBudgetCounters
from tokenmill.billing.journal import UsageJournal, open_slot, replay
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import TokenUsage
from tokenmill.billing.recorder import UsageRecorder
from tokenmill.billing.sync import BillingSync
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import Clock
from tokenmill.control.auth_throttle import AuthThrottle
from tokenmill.control.key_changes import KeyChangeWatcher
from tokenmill.control.keycache import KeyCache
from tokenmill.control.keys import KeyRepository, Principal
from tokenmill.datasets.compose import build_datasets
from tokenmill.evals.compose import add_evals
from tokenmill.files.billing import (
    VECTOR_STORAGE_PRICE_MODEL,
    StorageBilling,
    StorageBillingLoop,
    Stored,
)
from tokenmill.files.service import FileService
from tokenmill.files.sweep import ExpiredFileSweep
from tokenmill.gateway.admin import AdminApi
from tokenmill.gateway.admission import Admission
from tokenmill.gateway.batch_lines import Admit, PlatformLineSender
from tokenmill.gateway.directory import ModelDirectory, ModelEntry
from tokenmill.gateway.embedder import PlatformEmbedder
from tokenmill.gateway.library import LibraryWatcher, load_directory
from tokenmill.gateway.limits.base import RateCounters
from tokenmill.gateway.limits.local import LocalRateCounters
from tokenmill.gateway.metering import UsageSink
from tokenmill.gateway.metrics import GatewayMetrics
from tokenmill.gateway.platform_calls import CostOf, PlatformCaller
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.gateway.services import RequestIds, Services
from tokenmill.gateway.suspects import SuspectProber
from tokenmill.knowledge.chunking import Tokenizer, auto_strategy, wordpiece_tokenizer
from tokenmill.knowledge.indexing import KIND as INDEXING
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.service import VectorStoreService
from tokenmill.knowledge.storage import stored_spans as vector_stored_spans
from tokenmill.plugins.service import McpService
from tokenmill.responses.repository import ResponseRepository
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.tuning.compose import add_fine_tuning
from tokenmill.work.background import ThreadedWorker
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

log = logging.getLogger(__name__)

CallerParts = tuple[
    ModelDirectory, Router, UpstreamClient, Callable[[], UsageSink], Clock, RequestIds, CostOf
]

STORAGE_BILLING_INTERVAL_SECONDS = 3600.0
EXPIRED_FILE_SWEEP_SECONDS = 300.0
EMBEDDING_MAX_INPUT_TOKENS = 256  # all-MiniLM-L6-v2's window, [CLS] and [SEP] included


@dataclass(slots=True)
class Gateway:
    services: Services
    recorder: UsageRecorder
    journal: UsageJournal | None = None

    def close(self) -> None:
        """After the server stopped: journals, then writes, what is still queued."""
        if self.journal is not None:
            self.journal.close()
        self.recorder.close()


def open_journal(
    settings: Settings, db: Database, clock: Clock, recorder: UsageRecorder
) -> tuple[UsageJournal, list[UsageEvent]]:
    """This process's journal slot, after what an earlier process left in it is ingested;
    with what that was."""
    directory, lock = open_slot(settings.ensure_data_dir() / "journal")
    prices = PriceBookRepository(db, clock).load()

    def cost_of(event: UsageEvent) -> int:
        usage = TokenUsage.clamped(
            event.prompt_tokens, event.cached_tokens, event.completion_tokens
        )
        return prices.cost_micros(event.model, usage, event.created_at, event.service_tier)

    left = replay(directory, cost_of)
    if left:
        UsageRepository(db).insert_many(left)
        log.info("replayed %d usage events from the journal in %s", len(left), directory)
    journal = UsageJournal(directory, recorder, clock.utcnow, lock=lock, monotonic=clock.monotonic)
    journal.discard_replayed()
    recorder.on_written = journal.ingested
    journal.start()
    return journal, left


def counters(settings: Settings, holder: str | None = None) -> tuple[BudgetCounters, RateCounters]:
    """In-process by default; shared through Redis when ``redis_url`` is set. ``holder``:
    the name this gateway's budget reservations are held under (see ``RedisBudgetCounters``)."""
    if not settings.redis_url:
        return LocalBudgetCounters(), LocalRateCounters()
    from tokenmill.billing.redis_counters import RedisBudgetCounters
    from tokenmill.gateway.limits.redis_counters import RedisRateCounters
    from tokenmill.store.redisclient import connect

    client = connect(settings.redis_url)
    namespace = settings.redis_namespace
    return (
        RedisBudgetCounters(client, f"{namespace}:budget", holder),
        RedisRateCounters(client, f"{namespace}:rate"),
    )


def build_admission(
    settings: Settings,
    db: Database,
    clock: Clock,
    journal: UsageJournal | None = None,
    replayed: Sequence[UsageEvent] = (),
) -> Admission:
    """With a journal, reservations are held under its slot's name, and what the process
    before left held there is reclaimed at start, settled to the ``replayed`` events' costs;
    and new work is refused while the journal says usage is safe nowhere."""
    holder = None if journal is None else f"{socket.gethostname()}:{journal.directory.resolve()}"
    budgets, rates = counters(settings, holder)
    costs = [(event.request_id, event.cost_micros) for event in replayed]
    sync = BillingSync(db, clock, budgets, settings.billing_sync_seconds, reclaim=costs)
    return Admission(sync, rates, clock, metering=journal)


def build_gateway(
    settings: Settings,
    db: Database,
    clock: Clock,
    router: Router,
    *,
    admission: bool = True,
    journal: bool = True,
    worker: bool = True,
) -> Gateway:
    """``worker``: this process runs background work too (the work queue's runners, storage
    billing, the expired-file sweep); a gateway of the separate roles runs none."""
    recorder = UsageRecorder(UsageRepository(db), settings.usage_flush_interval_seconds)
    durable, replayed = open_journal(settings, db, clock, recorder) if journal else (None, [])
    keys = KeyRepository(db, clock)
    key_cache = KeyCache(keys, clock, settings.key_cache_ttl_seconds)
    models = ModelRepository(db, clock)
    directory = load_directory(models)
    files = FileService.build(settings, db, clock)
    targets = settings.ttft_targets
    mcp = McpService.build(settings, db, clock)
    admin = AdminApi.build(db, clock, key_cache.invalidate, targets)
    admin.mcp = mcp
    admin.datasets = build_datasets(db, clock, files)
    admin.tenant_models_dir = settings.resolved_tenant_models_dir
    services = Services(
        keys=key_cache,
        recorder=recorder,
        directory=directory,
        router=router,
        upstream=UpstreamClient(settings.upstream_timeout_seconds),
        clock=clock,
        loops=[
            KeyChangeWatcher(keys, key_cache, clock),
            LibraryWatcher(models, directory),
            SuspectProber(router),
            *(background_jobs(db, clock, files) if worker else []),
        ],
        admission=build_admission(settings, db, clock, durable, replayed) if admission else None,
        journal=durable,
        admin=admin,
        files=files,
        responses=ResponseRepository(db),
        mcp=mcp,
        apps=AppRepository(db, clock),
        ttft_targets=targets,
        auth_throttle=AuthThrottle(clock, settings.auth_failures_per_minute),
        metrics=GatewayMetrics(
            known=lambda model: directory.lookup(model) is not None,
            tenant_labels=settings.metrics_tenant_labels,
            waiting=lambda: sum(pool.waiting for pool in router.pools.values()),
            journal_lag=None if durable is None else durable.lag,
        ),
    )
    add_vector_stores(
        services, db, clock, files, workers=settings.indexing_workers if worker else 0
    )
    add_batches(
        services, settings, db, clock, files, workers=settings.batch_workers if worker else 0
    )
    add_fine_tuning(
        services, settings, db, clock, files, workers=settings.tuning_workers if worker else 0
    )
    add_evals(services, db, clock, files, workers=settings.batch_workers if worker else 0)
    return Gateway(services, recorder, durable)


def background_jobs(
    db: Database, clock: Clock, files: FileService
) -> list[StorageBillingLoop | ExpiredFileSweep]:
    """What a process that runs background work runs besides the work queue's runners."""
    return [*storage_billing(db, clock, files), ExpiredFileSweep(files, EXPIRED_FILE_SWEEP_SECONDS)]


def storage_billing(db: Database, clock: Clock, files: FileService) -> list[StorageBillingLoop]:
    """Daily storage charges: uploaded files, and vector stores' indexed chunks."""
    prices, ledger = PriceBookRepository(db, clock), LedgerRepository(db, clock)
    kinds = [
        Stored(files.repository.stored_spans),
        Stored(
            lambda start, end: vector_stored_spans(db, start, end),
            VECTOR_STORAGE_PRICE_MODEL,
            "vector-storage",
            "vector store chunks",
        ),
    ]
    return [
        StorageBillingLoop(
            StorageBilling(kind, prices, ledger), clock, STORAGE_BILLING_INTERVAL_SECONDS
        )
        for kind in kinds
    ]


def platform_call_parts(services: Services, db: Database, clock: Clock) -> CallerParts:
    """What a ``PlatformCaller`` (the embedder is one) is built from: the gateway's directory,
    router, upstream and usage sink, and each call priced by the price book then in effect."""
    prices = PriceBookRepository(db, clock)

    def cost_of(model: str, usage: TokenUsage, at: datetime) -> int:
        return prices.load().cost_micros(model, usage, at)

    return (
        services.directory,
        services.router,
        services.upstream,
        lambda: services.sink,
        clock,
        services.ids,
        cost_of,
    )


def admit_line(admission: Admission | None) -> Admit | None:
    """A batch line checked as the same call from a client would be, reserving nothing (the
    line is billed as it is answered)."""
    if admission is None:
        return None

    async def admit(
        principal: Principal, entry: ModelEntry, parsed: Any, size: int, request_id: str
    ) -> None:
        sampling = parsed.sampling
        ticket = await admission.admit(
            principal, entry, sampling.max_tokens, sampling.n, size, request_id
        )
        await ticket.release_now()

    return admit


def add_batches(
    services: Services,
    settings: Settings,
    db: Database,
    clock: Clock,
    files: FileService,
    *,
    workers: int,
) -> None:
    """The /v1/batches API, and ``workers`` background threads running batches: each line
    sent through the router as the batch's key, metered at ``batch_price_factor``."""
    caller = PlatformCaller(*platform_call_parts(services, db, clock))
    queue = WorkQueue(db, clock)
    repository = BatchRepository(db, clock)
    services.batches = BatchService(repository, files, queue, clock)
    services.loops.append(caller)  # before the workers: its loop is bound first
    keys = KeyRepository(db, clock)
    factor = Fraction(str(settings.batch_price_factor))
    send = PlatformLineSender(caller, keys.principal, factor, admit_line(services.admission))
    handler = batch_handler(repository, files, send, clock, concurrency=settings.batch_concurrency)
    for _ in range(workers):
        services.loops.append(ThreadedWorker(WorkRunner(queue, {BATCH: handler})))


def embedding_tokenizer() -> Tokenizer | None:
    """The bundled embeddings model's tokenizer (chunks are counted in its tokens)."""
    try:
        from tokenmill.engine.embed.__main__ import bundled_model_path

        return wordpiece_tokenizer(bundled_model_path())
    except (ImportError, OSError, ValueError) as error:
        log.warning("vector stores are off: no embeddings model tokenizer (%s)", error)
        return None


def add_vector_stores(
    services: Services, db: Database, clock: Clock, files: FileService, *, workers: int
) -> None:
    """The /v1/vector_stores API, embedding through the router (metered to the tenant), and
    ``workers`` background threads indexing the files added to stores (files index one per
    thread; the threads' embedding calls meet in the embeddings replica's batches)."""
    tokenizer = embedding_tokenizer()
    if tokenizer is None:
        return
    embedder = PlatformEmbedder(*platform_call_parts(services, db, clock))
    queue = WorkQueue(db, clock)
    stores = VectorStoreService(
        db,
        VectorStoreRepository(db, clock),
        queue,
        embedder.embed,
        auto_strategy(EMBEDDING_MAX_INPUT_TOKENS),
        admit=lambda principal, tokens, request_id: embedder.admit(
            services.admission, principal, tokens, request_id
        ),
    )
    services.vector_stores = stores
    services.loops.append(embedder)  # before the worker: its loop is bound first
    handler = stores.worker_handler(files.repository, files.storage, tokenizer)
    for _ in range(workers):
        services.loops.append(ThreadedWorker(WorkRunner(queue, {INDEXING: handler})))
