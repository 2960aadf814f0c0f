from __future__ import annotations

import pytest

from tokenmill.gateway.latency import TtftPredictor, WaitLine
from tokenmill.protocol.tenancy import Priority


def learned(predictor: TtftPredictor, priority: Priority, samples: list[tuple[int, float]]) -> None:
    """Requests sent one at a time to an idle replica: ``(prompt tokens, wait)`` each."""
    now = 0.0
    for tokens, wait in samples:
        waiting = predictor.sent(priority, tokens, now)
        predictor.first_token(waiting, now + wait)
        now += 100.0


def test_nothing_is_predicted_before_a_first_token_was_seen() -> None:
    predictor = TtftPredictor()
    predictor.sent(Priority.DEFAULT, 100, now=0.0)
    assert predictor.predict(Priority.DEFAULT, 50) is None


def test_the_line_through_waits_has_a_fixed_part_and_a_part_per_token() -> None:
    line = WaitLine()
    for tokens in (100, 300, 200, 600, 400):
        line.add(tokens, 0.2 + 0.01 * tokens)
    fixed, per_token = line.parts()
    assert (fixed, per_token) == (pytest.approx(0.2), pytest.approx(0.01))
    assert line.seconds(1000) == pytest.approx(10.2)


def test_samples_too_alike_give_a_rate_per_token_and_no_fixed_part() -> None:
    line = WaitLine()
    for _ in range(5):
        line.add(200, 1.0)
    assert line.parts() == (0.0, pytest.approx(0.005))


def test_recent_samples_outweigh_old_ones_as_the_replica_gets_busy() -> None:
    predictor = TtftPredictor()
    learned(predictor, Priority.DEFAULT, [(100 + 10 * (i % 5), 0.5) for i in range(40)])
    quiet = predictor.predict(Priority.DEFAULT, 100)
    assert quiet == pytest.approx(0.5, rel=0.1)
    learned(predictor, Priority.DEFAULT, [(100 + 10 * (i % 5), 2.0) for i in range(40)])
    assert predictor.predict(Priority.DEFAULT, 100) == pytest.approx(2.0, rel=0.1)


def test_only_as_urgent_or_more_urgent_work_stands_before_a_request() -> None:
    predictor = TtftPredictor()
    learned(predictor, Priority.DEFAULT, [(100, 1.0), (200, 2.0)])  # 10 ms a token
    predictor.sent(Priority.FLEX, 1000, now=0.0)
    predictor.sent(Priority.DEFAULT, 200, now=0.0)
    predictor.sent(Priority.PRIORITY, 100, now=0.0)
    assert predictor.predict(Priority.PRIORITY, 100) == pytest.approx(2.0)
    assert predictor.predict(Priority.DEFAULT, 100) == pytest.approx(4.0)
    assert predictor.predict(Priority.FLEX, 100) == pytest.approx(14.0)


def test_a_request_that_ends_without_a_first_token_leaves_the_queue_once() -> None:
    predictor = TtftPredictor()
    waiting = predictor.sent(Priority.DEFAULT, 100, now=0.0)
    predictor.ended(waiting)
    predictor.ended(waiting)
    predictor.first_token(waiting, now=5.0)
    assert predictor.queued[Priority.DEFAULT] == 0
    assert predictor.line(Priority.DEFAULT) is None


def test_each_class_learns_its_own_line_and_an_unseen_one_borrows_the_nearest() -> None:
    predictor = TtftPredictor()
    learned(predictor, Priority.PRIORITY, [(100, 0.5)])
    assert predictor.predict(Priority.FLEX, 100) == pytest.approx(0.5)
    learned(predictor, Priority.DEFAULT, [(100, 2.0)])  # waited behind later priority work
    assert predictor.predict(Priority.DEFAULT, 100) == pytest.approx(2.0)
    assert predictor.predict(Priority.PRIORITY, 100) == pytest.approx(0.5)
    assert predictor.predict(Priority.FLEX, 100) == pytest.approx(2.0)
