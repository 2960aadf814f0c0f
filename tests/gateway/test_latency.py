from __future__ import annotations

import pytest

from tokenmill.gateway.latency import TtftPredictor
from tokenmill.protocol.tenancy import Priority


def test_nothing_is_predicted_before_a_first_token_was_seen() -> None:
    predictor = TtftPredictor()
    predictor.sent(Priority.DEFAULT, 100, now=0.0)
    assert predictor.predict(Priority.DEFAULT, 50) is None


def test_a_sample_is_the_wait_per_token_that_stood_before_it() -> None:
    predictor = TtftPredictor()
    first = predictor.sent(Priority.DEFAULT, 300, now=0.0)
    second = predictor.sent(Priority.DEFAULT, 100, now=0.0)
    assert second.ahead == 400
    predictor.first_token(first, now=3.0)  # 300 tokens in 3 s
    assert predictor.seconds_per_token(Priority.DEFAULT) == pytest.approx(0.01)
    # Only the second request's 100 tokens still wait.
    assert predictor.predict(Priority.DEFAULT, 50) == pytest.approx(1.5)
    predictor.first_token(second, now=3.0 + 1.0)  # 400 tokens in 4 s: the same rate
    assert predictor.seconds_per_token(Priority.DEFAULT) == pytest.approx(0.01)
    assert predictor.queued[Priority.DEFAULT] == 0


def test_only_as_urgent_or_more_urgent_work_stands_before_a_request() -> None:
    predictor = TtftPredictor(rates={Priority.DEFAULT: 0.01})
    predictor.sent(Priority.FLEX, 1000, now=0.0)
    predictor.sent(Priority.DEFAULT, 200, now=0.0)
    predictor.sent(Priority.PRIORITY, 100, now=0.0)
    assert predictor.predict(Priority.PRIORITY, 0) == pytest.approx(1.0)
    assert predictor.predict(Priority.DEFAULT, 0) == pytest.approx(3.0)
    assert predictor.predict(Priority.FLEX, 0) == pytest.approx(13.0)


def test_a_request_that_ends_without_a_first_token_leaves_the_queue_once() -> None:
    predictor = TtftPredictor()
    waiting = predictor.sent(Priority.DEFAULT, 100, now=0.0)
    predictor.ended(waiting)
    predictor.ended(waiting)
    predictor.first_token(waiting, now=5.0)
    assert predictor.queued[Priority.DEFAULT] == 0
    assert predictor.seconds_per_token(Priority.DEFAULT) is None


def test_the_rate_follows_the_replica_as_its_load_changes() -> None:
    predictor = TtftPredictor()
    for step in range(40):
        waiting = predictor.sent(Priority.DEFAULT, 100, now=float(step))
        predictor.first_token(waiting, now=step + 0.5)  # 5 ms a token
    assert predictor.seconds_per_token(Priority.DEFAULT) == pytest.approx(0.005)
    for step in range(40):
        waiting = predictor.sent(Priority.DEFAULT, 100, now=100.0 + step)
        predictor.first_token(waiting, now=100.0 + step + 2.0)  # loaded: 20 ms a token
    assert predictor.seconds_per_token(Priority.DEFAULT) == pytest.approx(0.02, rel=0.01)


def test_each_class_learns_its_own_rate_and_an_unseen_one_borrows_the_nearest() -> None:
    predictor = TtftPredictor()
    urgent = predictor.sent(Priority.PRIORITY, 100, now=0.0)
    predictor.first_token(urgent, now=0.5)
    assert predictor.seconds_per_token(Priority.FLEX) == pytest.approx(0.005)
    waiting = predictor.sent(Priority.DEFAULT, 100, now=1.0)
    predictor.first_token(waiting, now=3.0)  # default waited behind later priority work
    assert predictor.seconds_per_token(Priority.DEFAULT) == pytest.approx(0.02)
    assert predictor.seconds_per_token(Priority.PRIORITY) == pytest.approx(0.005)
    assert predictor.seconds_per_token(Priority.FLEX) == pytest.approx(0.02)
