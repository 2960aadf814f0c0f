"""Sealed secrets: a round trip, the generated key file (0600, reused), a configured key that
wins over it, and a value sealed under another key that says so."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tokenmill.control.sealing import KEY_FILE, Sealer, SealError, new_key


def test_a_sealed_value_opens_to_what_was_sealed_and_does_not_show_it() -> None:
    sealer = Sealer(new_key())
    plain = b'{"Authorization": "Bearer s3cret-value"}'

    sealed = sealer.seal(plain)

    assert b"s3cret-value" not in sealed
    assert sealer.open(sealed) == plain
    assert sealer.seal(plain) != sealed  # a fresh nonce each time


def test_the_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # not there yet: created on the way
    first = Sealer.for_platform(None, data_dir)
    key_file = data_dir / KEY_FILE

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    sealed = first.seal(b"kept")

    second = Sealer.for_platform(None, data_dir)

    assert key_file.read_text() == key
    assert second.open(sealed) == b"kept"


def test_a_configured_key_wins_over_the_key_file(tmp_path: Path) -> None:
    from_file = Sealer.for_platform(None, tmp_path)
    configured = new_key()

    sealer = Sealer.for_platform(configured, tmp_path)

    assert Sealer(configured).open(sealer.seal(b"x")) == b"x"
    with pytest.raises(SealError):
        from_file.open(sealer.seal(b"x"))


def test_a_configured_key_writes_no_key_file(tmp_path: Path) -> None:
    Sealer.for_platform(new_key(), tmp_path)

    assert not (tmp_path / KEY_FILE).exists()


def test_a_value_sealed_under_another_key_raises_seal_error() -> None:
    sealed = Sealer(new_key()).seal(b"secret")

    with pytest.raises(SealError, match="secret_key"):
        Sealer(new_key()).open(sealed)
    with pytest.raises(SealError):
        Sealer(new_key()).open(b"not a token at all")
