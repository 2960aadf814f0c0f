"""What a client may ask of a fine-tuning job, and the job, checkpoint and event objects in the
shapes the official ``openai`` client parses."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from tokenmill.errors import InvalidRequest
from tokenmill.tuning.objects import (
    MAX_SEED,
    CheckpointInfo,
    FineTuningJobInfo,
    event_as_openai,
    fine_tuned_name,
    new_checkpoint_id,
    new_job_id,
    parse_hyperparameters,
    parse_seed,
    parse_suffix,
)
from tokenmill.tuning.status import JobStatus
from tokenmill.work.items import WorkEvent

AUTO = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
JOB = FineTuningJobInfo(
    id="ftjob-0123456789abcdef01234567",
    tenant_id="ten_alpha",
    key_id="key_a",
    model="smol",
    base_served_name="smol@1",
    training_file_id="file-train",
    validation_file_id=None,
    suffix=None,
    seed=42,
    hyperparameters=AUTO,
    status=JobStatus.VALIDATING_FILES,
    created_at=CREATED,
)


def refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as error:
        parse_hyperparameters(body)
    assert error.value.status == 400
    return error.value


def test_hyperparameters_default_to_auto() -> None:
    assert parse_hyperparameters({}) == AUTO
    assert parse_hyperparameters({"hyperparameters": None, "method": None}) == AUTO
    assert parse_hyperparameters({"method": {"type": "supervised"}}) == AUTO


def test_hyperparameters_come_from_the_method_or_the_older_top_level_field() -> None:
    asked = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}
    method = {"type": "supervised", "supervised": {"hyperparameters": asked}}
    assert parse_hyperparameters({"method": method}) == asked
    assert parse_hyperparameters({"hyperparameters": {"n_epochs": 3}}) == {**AUTO, "n_epochs": 3}
    both = {"method": method, "hyperparameters": {"n_epochs": 9}}
    assert parse_hyperparameters(both)["n_epochs"] == 3  # the method's win
    bare = {"method": {"type": "supervised"}, "hyperparameters": {"n_epochs": 9}}
    assert parse_hyperparameters(bare)["n_epochs"] == 9


def test_only_the_supervised_method_is_offered() -> None:
    error = refused({"method": {"type": "dpo", "dpo": {}}})
    assert (error.param, error.code) == ("method.type", "invalid_value")
    assert refused({"method": "supervised"}).param == "method.type"
    assert refused({"method": {"type": "supervised", "supervised": [1]}}).param == "method"


@pytest.mark.parametrize("raw", ["n_epochs=3", [1], [], 0], ids=repr)
def test_hyperparameters_that_are_not_an_object_are_refused(raw: object) -> None:
    assert refused({"hyperparameters": raw}).param == "hyperparameters"


def test_an_unknown_hyperparameter_is_refused_by_name() -> None:
    error = refused({"hyperparameters": {"n_epochs": 2, "warmup": 10}})
    assert error.param == "hyperparameters.warmup" and "warmup" in error.message


@pytest.mark.parametrize(
    ("name", "value", "parsed"),
    [
        ("n_epochs", 1, 1),
        ("n_epochs", 50, 50),
        ("n_epochs", 4.0, 4),
        ("batch_size", 1, 1),
        ("batch_size", 256, 256),
        ("learning_rate_multiplier", 10, 10.0),
        ("learning_rate_multiplier", 1e-9, 1e-9),
        ("learning_rate_multiplier", "auto", "auto"),
    ],
)
def test_a_hyperparameter_in_range_is_kept_with_its_type(
    name: str, value: object, parsed: object
) -> None:
    found = parse_hyperparameters({"hyperparameters": {name: value}})[name]
    assert found == parsed and type(found) is type(parsed)


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("n_epochs", 0, "invalid_value"),
        ("n_epochs", 51, "invalid_value"),
        ("n_epochs", -3, "invalid_value"),
        ("batch_size", 0, "invalid_value"),
        ("batch_size", 257, "invalid_value"),
        ("learning_rate_multiplier", 0, "invalid_value"),
        ("learning_rate_multiplier", -0.1, "invalid_value"),
        ("learning_rate_multiplier", 10.0001, "invalid_value"),
        ("n_epochs", 2.5, None),
        ("n_epochs", "3", None),
        ("n_epochs", True, None),
        ("batch_size", None, None),
        ("learning_rate_multiplier", "AUTO", None),
        ("learning_rate_multiplier", False, None),
    ],
)
def test_a_hyperparameter_out_of_range_or_of_the_wrong_type_is_refused(
    name: str, value: object, code: str | None
) -> None:
    error = refused({"hyperparameters": {name: value}})
    assert (error.param, error.code) == (f"hyperparameters.{name}", code)


def test_a_suffix_is_kept_as_given_and_lowercased_in_the_model_name() -> None:
    assert parse_suffix(None) is None and parse_suffix("") is None
    assert parse_suffix("Support_Bot-2") == "Support_Bot-2"
    assert parse_suffix("x" * 64) == "x" * 64
    name = fine_tuned_name("smol", "ten_1", "Support_Bot-2", "ftjob-0123456789abcdef")
    assert name == "ft:smol:ten_1:support_bot-2:01234567"


@pytest.mark.parametrize("raw", ["x" * 65, "a b", "a:b", "a/b", "café", 7, ["a"]], ids=repr)
def test_a_suffix_that_would_break_the_model_name_is_refused(raw: object) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_suffix(raw)
    assert (error.value.param, error.value.code) == ("suffix", "invalid_value")


def test_a_seed_is_kept_or_drawn_in_range() -> None:
    assert parse_seed(0) == 0 and parse_seed(MAX_SEED) == MAX_SEED
    assert all(0 <= parse_seed(None) <= MAX_SEED for _ in range(50))


@pytest.mark.parametrize("raw", [-1, MAX_SEED + 1, 1.0, "1", True], ids=repr)
def test_a_seed_out_of_range_or_not_an_integer_is_refused(raw: object) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_seed(raw)
    assert (error.value.param, error.value.code) == ("seed", "invalid_value")


def test_ids_are_random_and_prefixed() -> None:
    jobs, checkpoints = (
        {new_job_id() for _ in range(100)},
        {new_checkpoint_id() for _ in range(100)},
    )
    assert len(jobs) == len(checkpoints) == 100
    assert all(re.fullmatch(r"ftjob-[0-9a-f]{24}", j) for j in jobs)
    assert all(re.fullmatch(r"ftckpt-[0-9a-f]{24}", c) for c in checkpoints)


def test_a_fine_tuned_name_is_openais_form() -> None:
    assert fine_tuned_name("smol", "ten_a", "bot", JOB.id) == "ft:smol:ten_a:bot:01234567"
    assert fine_tuned_name("smol", "ten_a", None, JOB.id) == "ft:smol:ten_a::01234567"


def jobs_in_every_status() -> list[FineTuningJobInfo]:
    ended = {"finished_at": datetime(2026, 1, 2, 4, tzinfo=UTC)}
    return [
        JOB,
        replace(JOB, status=JobStatus.QUEUED, resolved={**AUTO, "n_epochs": 3, "batch_size": 4}),
        replace(JOB, status=JobStatus.RUNNING, trained_tokens=10, estimated_finish=CREATED),
        replace(JOB, status=JobStatus.SUCCEEDED, fine_tuned_model="ft:smol:a::0123", **ended),
        replace(JOB, status=JobStatus.CANCELLED, trained_tokens=5, cost_micros=3, **ended),
        replace(
            JOB,
            status=JobStatus.FAILED,
            error={"code": "invalid_training_file", "message": "bad", "param": "training_file"},
            **ended,
        ),
    ]


@pytest.mark.parametrize("job", jobs_in_every_status(), ids=lambda j: j.status.value)
def test_a_job_is_what_the_openai_client_parses(job: FineTuningJobInfo) -> None:
    parsed = FineTuningJob.model_validate(job.as_openai())
    assert (parsed.id, parsed.status, parsed.model) == (job.id, job.status.value, "smol")
    assert parsed.created_at == int(CREATED.timestamp())
    assert parsed.organization_id == "ten_alpha" and parsed.seed == 42
    assert parsed.method is not None and parsed.method.type == "supervised"


def test_a_paused_job_differs_from_openais_shape_only_in_its_status() -> None:
    shape = replace(JOB, status=JobStatus.PAUSED).as_openai()
    with pytest.raises(pydantic.ValidationError) as error:
        FineTuningJob.model_validate(shape)
    assert {e["loc"] for e in error.value.errors()} == {("status",)}
    assert FineTuningJob.model_validate({**shape, "status": "queued"}).id == JOB.id


def test_a_job_shows_what_it_trained_with_over_what_was_asked() -> None:
    job = replace(
        JOB,
        hyperparameters={**AUTO, "batch_size": 2},
        resolved={"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 1.5},
        metadata={"team": "search"},
        suffix="bot",
        validation_file_id="file-valid",
    )
    shape = job.as_openai()
    trained = {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 1.5}
    assert shape["hyperparameters"] == trained
    assert shape["method"] == {"type": "supervised", "supervised": {"hyperparameters": trained}}
    assert shape["metadata"] == {"team": "search"} and shape["user_provided_suffix"] == "bot"
    assert shape["validation_file"] == "file-valid" and shape["training_file"] == "file-train"
    assert shape["finished_at"] is None and shape["trained_tokens"] is None
    assert JOB.as_openai()["metadata"] is None  # OpenAI's null, not {}


def test_only_ended_jobs_are_finished() -> None:
    assert {s for s in JobStatus if replace(JOB, status=s).finished} == JobStatus.finished()


def checkpoint(fine_tuned_model: str) -> CheckpointInfo:
    return CheckpointInfo(
        id="ftckpt-1",
        job_id=JOB.id,
        step=88,
        metrics={"train_loss": 0.25, "valid_loss": 0.5},
        path="/work/ckpt-88",
        created_at=CREATED,
        fine_tuned_model=fine_tuned_model,
    )


def test_a_checkpoint_is_what_the_openai_client_parses() -> None:
    parsed = FineTuningJobCheckpoint.model_validate(checkpoint("ft:smol:a::0123").as_openai())
    assert parsed.fine_tuned_model_checkpoint == "ft:smol:a::0123:ckpt-step-88"
    assert (parsed.step_number, parsed.fine_tuning_job_id) == (88, JOB.id)
    assert parsed.metrics.step == 88 and parsed.metrics.train_loss == 0.25
    assert parsed.created_at == int(CREATED.timestamp())
    assert "path" not in checkpoint(None).as_openai()  # the worker's disk stays private


@pytest.mark.parametrize("level", ["info", "warn", "error", "metrics"])
def test_an_event_is_what_the_openai_client_parses(level: str) -> None:
    event = WorkEvent(17, "wk_1", CREATED, level, "Step 3/10", {"step": 3})
    parsed = FineTuningJobEvent.model_validate(event_as_openai(event))
    assert (parsed.id, parsed.message, parsed.data) == ("ftevent-17", "Step 3/10", {"step": 3})
    metrics = level == "metrics"
    assert parsed.type == ("metrics" if metrics else "message")
    assert parsed.level == ("info" if metrics else level)
    assert parsed.created_at == int(CREATED.timestamp())


def test_an_event_without_data_has_an_empty_object() -> None:
    assert event_as_openai(WorkEvent(1, "wk_1", CREATED, "info", "hi"))["data"] == {}
