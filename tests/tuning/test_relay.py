"""The trainer's messages as a job's events (``execution._Relay``): a warning about an example
is a ``warn`` event, and a run whose first step is not step 1 says which checkpoint it went on
from."""

from __future__ import annotations

from pathlib import Path

from tests.tuning.conftest import Tuning
from tokenmill.catalog.repository import ModelRepository
from tokenmill.store.db import Database
from tokenmill.tuning.compose import validate_for
from tokenmill.tuning.execution import TuningOptions, TuningParts, _Relay
from tokenmill.tuning.hyperparameters import resolve_hyperparameters
from tokenmill.work.runner import WorkContext


def relay(tuning: Tuning, database: Database, tmp_path: Path) -> tuple[_Relay, str]:
    """A relay for a running job, with the parts a worker has (``compose.training_parts``)."""
    job = tuning.running()
    item = tuning.queue.get(job.work_item_id or "")
    assert item is not None
    parts = TuningParts(
        jobs=tuning.jobs,
        files=tuning.files,
        models=ModelRepository(database, tuning.clock),
        billing=tuning.billing,
        prices=tuning.prices,
        validate=validate_for,
        resolve=resolve_hyperparameters,
        options=TuningOptions(tmp_path, tmp_path / "adapters", 1),
        clock=tuning.clock,
    )
    return _Relay(parts, job, WorkContext(tuning.queue, item, "worker-1")), item.id


def test_warnings_are_warn_events_and_a_resumed_run_names_its_checkpoint(
    tuning: Tuning, database: Database, tmp_path: Path
) -> None:
    relayed, item_id = relay(tuning, database, tmp_path)
    cut = "The training example 4 was cut from 151 to 40 tokens (the context)"
    relayed.handle({"type": "warning", "message": cut})
    step = {"type": "step", "step": 3, "total_steps": 4, "train_loss": 1.5, "trained_tokens": 90}
    relayed.handle(step)
    relayed.handle({**step, "step": 4, "trained_tokens": 120})

    events = [(e.level, e.message) for e in tuning.queue.events(item_id)]
    assert events[0] == ("warn", cut)
    assert events[1] == ("info", "Training goes on from the checkpoint at step 2")
    assert [level for level, _ in events[2:]] == ["metrics", "metrics"]
    assert tuning.jobs.load(relayed._job.id).trained_tokens == 120


def test_a_run_from_the_start_says_nothing_of_checkpoints(
    tuning: Tuning, database: Database, tmp_path: Path
) -> None:
    relayed, item_id = relay(tuning, database, tmp_path)
    relayed.handle({"type": "step", "step": 1, "total_steps": 2, "train_loss": 2.0})

    assert [e.level for e in tuning.queue.events(item_id)] == ["metrics"]
