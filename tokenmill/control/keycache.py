"""The gateway's hot-path authentication: bearer key to principal, with no database read on a hit.

Both answers are cached: a key that exists (for ``ttl_seconds``) and a hash that matches no key
(for ``negative_ttl_seconds``, in a bounded LRU), so a client hammering with a wrong key costs
one query per interval. Concurrent misses for the same hash share one query, run in a thread.

A ``KeyCache`` belongs to one event loop; ``invalidate`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from tokenmill.clock import Clock
from tokenmill.control.keys import KEY_PREFIX, Principal, hash_secret
from tokenmill.errors import Unauthorized

MISSING_KEY_MESSAGE = (
    "Missing bearer API key. Provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY)."
)
REVOKED_MESSAGE = "This API key has been revoked."
EXPIRED_MESSAGE = "This API key has expired."
MAX_SECRET_CHARS = 256
SHOWN_SECRET_CHARS = 6


def incorrect_key_message(secret: str) -> str:
    shown = secret[:SHOWN_SECRET_CHARS]
    return (
        f"Incorrect API key provided: {shown}…. "
        "Check the key, or ask your tenant admin for a new one."
    )


def bearer_secret(authorization_header: str | None) -> str:
    """The secret from ``Authorization: Bearer <secret>``; raises ``Unauthorized`` otherwise."""
    if not authorization_header:
        raise Unauthorized(MISSING_KEY_MESSAGE)
    scheme, _, secret = authorization_header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized(MISSING_KEY_MESSAGE)
    return secret


class PrincipalLookup(Protocol):
    """What the cache needs from ``KeyRepository``."""

    def principal_for_secret_hash(self, secret_hash: str) -> Principal | None: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal | None
    valid_until: float


class KeyCache:
    def __init__(
        self,
        repo: PrincipalLookup,
        clock: Clock,
        ttl_seconds: float,
        *,
        negative_ttl_seconds: float | None = None,
        max_entries: int = 100_000,
        max_negative_entries: int = 10_000,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._ttl_seconds = ttl_seconds
        self._negative_ttl_seconds = (
            negative_ttl_seconds if negative_ttl_seconds is not None else min(ttl_seconds, 5.0)
        )
        self._max_entries = max_entries
        self._max_negative_entries = max_negative_entries
        self._lock = threading.Lock()
        self._known: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: OrderedDict[str, _Entry] = OrderedDict()
        self._hash_by_key_id: dict[str, str] = {}
        self._inflight: dict[str, asyncio.Future[Principal | None]] = {}
        # Bumped by every invalidation: a lookup that started before one must not cache its
        # (possibly stale) answer.
        self._generation = 0

    async def authenticate(self, authorization_header: str | None) -> Principal:
        secret = bearer_secret(authorization_header)
        if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_SECRET_CHARS:
            raise Unauthorized(incorrect_key_message(secret))
        secret_hash = hash_secret(secret)
        principal = await self._lookup(secret_hash)
        if principal is None:
            raise Unauthorized(incorrect_key_message(secret))
        if principal.revoked:
            raise Unauthorized(REVOKED_MESSAGE)
        if principal.is_expired(self._clock.utcnow()):
            raise Unauthorized(EXPIRED_MESSAGE)
        return principal

    def known_valid(self, secret: str | None) -> bool:
        """Whether ``secret`` is a key this cache holds as valid now (no database read)."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            return False
        now = self._clock.monotonic()
        with self._lock:
            entry = self._known.get(hash_secret(secret))
        principal = None if entry is None or entry.valid_until <= now else entry.principal
        return (
            principal is not None
            and not principal.revoked
            and not principal.is_expired(self._clock.utcnow())
        )

    def invalidate(self, key_id: str) -> None:
        """Forget a key now (after revoking or changing it through this process)."""
        with self._lock:
            self._generation += 1
            secret_hash = self._hash_by_key_id.pop(key_id, None)
            if secret_hash is not None:
                self._known.pop(secret_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._known.clear()
            self._unknown.clear()
            self._hash_by_key_id.clear()

    async def _lookup(self, secret_hash: str) -> Principal | None:
        now = self._clock.monotonic()
        with self._lock:
            for table in (self._known, self._unknown):
                entry = table.get(secret_hash)
                if entry is None:
                    continue
                if entry.valid_until > now:
                    table.move_to_end(secret_hash)
                    return entry.principal
                self._drop(table, secret_hash)
            generation = self._generation
        future = self._inflight.get(secret_hash)
        if future is None:
            future = asyncio.ensure_future(
                asyncio.to_thread(self._repo.principal_for_secret_hash, secret_hash)
            )
            self._inflight[secret_hash] = future
            future.add_done_callback(lambda done: self._settle(secret_hash, done, generation))
        # Shielded: one caller giving up (a client disconnect) must not cancel the others' query.
        return await asyncio.shield(future)

    def _settle(
        self, secret_hash: str, future: asyncio.Future[Principal | None], generation: int
    ) -> None:
        if self._inflight.get(secret_hash) is future:
            del self._inflight[secret_hash]
        if future.cancelled() or future.exception() is not None:
            return  # nothing cached: the next request asks the database again
        principal = future.result()
        valid_until = self._clock.monotonic()
        with self._lock:
            if generation != self._generation:
                return
            if principal is None:
                valid_until += self._negative_ttl_seconds
                self._put(self._unknown, secret_hash, _Entry(None, valid_until))
                self._trim(self._unknown, self._max_negative_entries)
            else:
                valid_until += self._ttl_seconds
                self._put(self._known, secret_hash, _Entry(principal, valid_until))
                self._hash_by_key_id[principal.key_id] = secret_hash
                self._trim(self._known, self._max_entries)

    @staticmethod
    def _put(table: OrderedDict[str, _Entry], secret_hash: str, entry: _Entry) -> None:
        table[secret_hash] = entry
        table.move_to_end(secret_hash)

    def _trim(self, table: OrderedDict[str, _Entry], limit: int) -> None:
        while len(table) > limit:
            oldest = next(iter(table))
            self._drop(table, oldest)

    def _drop(self, table: OrderedDict[str, _Entry], secret_hash: str) -> None:
        entry = table.pop(secret_hash, None)
        if entry is not None and entry.principal is not None:
            key_id = entry.principal.key_id
            if self._hash_by_key_id.get(key_id) == secret_hash:
                del self._hash_by_key_id[key_id]
