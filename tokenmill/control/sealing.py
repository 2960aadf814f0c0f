"""Secrets kept in the database (an MCP server's headers) are sealed with the platform's key.

The key is ``secret_key`` from the settings (``TOKENMILL_SECRET_KEY``: a Fernet key, what
``tokenmill.control.sealing.new_key`` prints), or else a key generated once into
``<data_dir>/secret.key`` (mode 0600). Every gateway of one platform must use the same key;
a value sealed under another key cannot be opened and says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tokenmill.errors import TokenmillError

KEY_FILE = "secret.key"
log = logging.getLogger(__name__)


class SealError(TokenmillError):
    """A sealed value that this platform's key does not open (a 500 that says why)."""

    default_code = "secret_unreadable"


def new_key() -> str:
    return Fernet.generate_key().decode()


class Sealer:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key.encode() if isinstance(key, str) else key)

    @classmethod
    def for_platform(cls, configured: str | None, data_dir: Path) -> Sealer:
        if configured:
            return cls(configured)
        path = data_dir / KEY_FILE
        if not path.exists():
            log.warning(
                "no secret_key is set: sealing secrets with a new key in %s; gateways that "
                "share this database must all be given it (TOKENMILL_SECRET_KEY)",
                path,
            )
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(new_key())
        return cls(path.read_text().strip())

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SealError(
                "A sealed secret does not open with this platform's key (was secret_key changed?)."
            ) from None
