"""Running an evaluation: the handler of ``eval`` work items (payload ``{"eval_id"}``).

In order: read the examples (a source that cannot be read, or holds no usable example, fails
the evaluation with the reason); mark it ``running`` with their count; then, model by model,
score every example (``concurrency`` at a time, each call through the platform as the
evaluation's key) and record the model's figures as soon as it is done, so a run retried
after a crash or a lost lease starts at the first model without figures. Progress is the share
of (model, example) pairs scored. A cancelled evaluation is ``cancelled`` already: its worker
stops at the next example (``WorkStopped``) and writes nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tokenmill.errors import TokenmillError
from tokenmill.evals.examples import Example, Examples, require_examples
from tokenmill.evals.metrics import Tally
from tokenmill.evals.objects import EvalInfo, EvalStatus
from tokenmill.evals.repository import EvalRepository
from tokenmill.evals.scoring import Calls, score_example
from tokenmill.work.items import WorkItem
from tokenmill.work.runner import Handler, WorkContext, WorkStopped

KIND = "eval"
DEFAULT_CONCURRENCY = 2
PROGRESS_EVERY = 10  # examples between progress writes

ReadExamples = Callable[[EvalInfo], Examples]


def eval_handler(
    evals: EvalRepository,
    read: ReadExamples,
    calls: Calls,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> Handler:
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")

    def handle(item: WorkItem, context: WorkContext) -> dict[str, Any]:
        info = evals.get(None, str(item.payload["eval_id"]))
        try:
            return _run(info, context)
        except WorkStopped:
            raise
        except Exception as error:
            if item.attempts >= item.max_attempts:
                message = f"The evaluation could not be run: {type(error).__name__}: {error}"
                evals.update(info.id, EvalStatus.FAILED, error=message)
            raise

    def _run(info: EvalInfo, context: WorkContext) -> dict[str, Any]:
        if info.status in EvalStatus.finished():
            return {"status": info.status.value}
        try:
            examples = require_examples(read(info))
        except (TokenmillError, FileNotFoundError, ValueError) as bad:
            message = bad.message if isinstance(bad, TokenmillError) else str(bad)
            failed = evals.update(info.id, EvalStatus.FAILED, error=message)
            return {"status": failed.status.value}
        info = evals.update(info.id, EvalStatus.RUNNING, examples=len(examples))
        pattern = re.compile(info.request.regex) if info.request.regex else None
        models = info.request.models
        total = len(models) * len(examples)
        with ThreadPoolExecutor(concurrency, thread_name_prefix=f"{info.id}-call") as pool:
            for index, model in enumerate(models):
                if model in info.results:
                    continue
                tally = Tally.empty()
                done = index * len(examples)
                for start in range(0, len(examples), PROGRESS_EVERY):
                    context.check()
                    part = examples[start : start + PROGRESS_EVERY]
                    _score(pool, calls, info, model, part, pattern, tally)
                    fraction = (done + start + len(part)) / total
                    context.progress_fraction = fraction
                    evals.update(info.id, progress=fraction)
                evals.record(info, model, tally.summary(info.request.metrics))
        ended = evals.update(info.id, EvalStatus.COMPLETED, progress=1.0)
        return {"status": ended.status.value, "models": len(models), "examples": len(examples)}

    return handle


def _score(
    pool: ThreadPoolExecutor,
    calls: Calls,
    info: EvalInfo,
    model: str,
    examples: tuple[Example, ...],
    pattern: re.Pattern[str] | None,
    tally: Tally,
) -> None:
    """Scores ``examples`` in the pool; tallies them in order, each into ``tally``."""
    parts = [Tally.empty() for _ in examples]
    futures = [
        pool.submit(score_example, calls, info, model, example, pattern, part)
        for example, part in zip(examples, parts, strict=True)
    ]
    for future in futures:
        future.result()  # raises what a call raised (a 5xx: the item is retried)
    for part in parts:
        for metric, value in part.sums.items():
            tally.add(metric, value, part.counts[metric])
        tally.errors += part.errors
