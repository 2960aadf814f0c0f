from __future__ import annotations

from tokenmill.engine.speculation import propose


def test_the_tokens_after_the_latest_earlier_match_are_proposed() -> None:
    context = [1, 2, 3, 4, 5, 9, 9, 1, 2, 3]
    assert propose(context, 2) == [4, 5]
    assert propose(context, 10) == [4, 5, 9, 9, 1, 2, 3]


def test_the_longest_suffix_wins_over_a_later_shorter_match() -> None:
    context = [7, 8, 5, 0, 6, 8, 6, 7, 8]
    assert propose(context, 1) == [5]  # [7, 8] matched at the start, not the later lone 8


def test_the_latest_occurrence_is_used() -> None:
    assert propose([3, 1, 3, 2, 3], 1) == [2]


def test_nothing_to_propose() -> None:
    assert propose([1, 2, 3], 4) == []
    assert propose([5], 4) == []
    assert propose([1, 1], 0) == []


def test_large_token_ids_match_whole_tokens_only() -> None:
    # 256 and 1 share bytes at an offset in their little-endian encoding
    context = [256, 1, 0, 5, 1]
    assert propose(context, 1) == [0]
