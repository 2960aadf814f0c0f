from __future__ import annotations

from tokenmill.engine.text_stream import TextStream


def feed(stream: TextStream, pieces: list[bytes]) -> list[str]:
    return [stream.push(piece) for piece in pieces]


def test_plain_pieces_pass_straight_through() -> None:
    assert feed(TextStream(), [b"Hello", b",", b" world"]) == ["Hello", ",", " world"]


def test_a_character_split_across_pieces_waits_for_its_last_byte() -> None:
    stream = TextStream()
    emoji = "🦙".encode()
    assert feed(stream, [b"a" + emoji[:1], emoji[1:3], emoji[3:] + b"!"]) == ["a", "", "🦙!"]


def test_no_replacement_character_mid_character() -> None:
    stream = TextStream()
    text = "".join(feed(stream, [bytes([b]) for b in "Étoile é 日本".encode()]))
    assert text + stream.finish() == "Étoile é 日本"


def test_truly_invalid_bytes_become_replacement_characters() -> None:
    stream = TextStream()
    assert stream.push(b"a\xffb") == "a\ufffdb"
    assert stream.push(b"\xe6") == ""
    assert stream.finish() == "\ufffd"


def test_stop_string_is_cut_and_not_shown() -> None:
    stream = TextStream(("END",))
    assert feed(stream, [b"abc E", b"N", b"Dxyz", b"more"]) == ["abc ", "", "", ""]
    assert stream.stopped
    assert stream.finish() == ""


def test_held_text_is_released_when_it_stops_looking_like_a_stop_string() -> None:
    stream = TextStream(("END",))
    assert feed(stream, [b"E", b"N", b"x"]) == ["", "", "ENx"]
    assert not stream.stopped


def test_finish_releases_a_held_prefix() -> None:
    stream = TextStream(("END",))
    assert stream.push(b"abEN") == "ab"
    assert stream.finish() == "EN"


def test_the_earliest_of_several_stop_strings_wins() -> None:
    stream = TextStream(("world", "lo"))
    assert stream.push(b"hello world") == "hel"
    assert stream.stopped


def test_a_stop_string_inside_one_piece() -> None:
    stream = TextStream(("\n\n",))
    assert stream.push(b"one\n\ntwo") == "one"


def test_stop_string_split_by_a_multibyte_character() -> None:
    stream = TextStream(("é!",))
    e_acute = "é".encode()
    assert feed(stream, [b"caf" + e_acute[:1], e_acute[1:], b"!"]) == ["caf", "", ""]
    assert stream.stopped
