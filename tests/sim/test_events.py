import pytest

from tokenmill.clock import Clock
from tokenmill.sim.events import EventLoop, SimClock


def test_events_run_in_time_order_then_in_scheduling_order() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.at(2.0, lambda: seen.append("late"))
    loop.at(1.0, lambda: seen.append("first at 1"))
    loop.at(1.0, lambda: seen.append("second at 1"))
    loop.at(0.5, lambda: loop.after(0.25, lambda: seen.append("chained")))
    loop.run()
    assert seen == ["chained", "first at 1", "second at 1", "late"]
    assert loop.now_seconds == 2.0


def test_cancelled_events_do_not_run_and_run_stops_at_the_horizon() -> None:
    loop = EventLoop()
    seen: list[float] = []
    event = loop.at(1.0, lambda: seen.append(1.0))
    loop.at(3.0, lambda: seen.append(3.0))
    event.cancel()
    loop.run(until_seconds=2.0)
    assert seen == []
    assert loop.now_seconds == 2.0
    assert loop.pending() == 1
    loop.run()
    assert seen == [3.0]


def test_sim_clock_is_a_clock_that_only_the_loop_moves() -> None:
    loop = EventLoop()
    clock: Clock = loop.clock
    start = clock.utcnow()
    loop.at(90.0, lambda: None)
    loop.run()
    assert clock.monotonic() == 90.0
    assert (clock.utcnow() - start).total_seconds() == 90.0
    with pytest.raises(ValueError):
        SimClock(5.0)._move_to(4.0)


def test_past_times_run_now_not_in_the_past() -> None:
    loop = EventLoop()
    seen: list[float] = []
    loop.at(5.0, lambda: loop.at(1.0, lambda: seen.append(loop.now_seconds)))
    loop.run()
    assert seen == [5.0]
