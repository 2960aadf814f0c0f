"""The ``responses`` table: a tenant's stored responses and the conversations they continue.

A response stores its own input items and output; the conversation a follow-up continues is
found by walking ``previous_response_id`` back (at most ``MAX_CHAIN`` responses). Another
tenant's response is no response at all (404), and a deleted one can no longer be continued.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, or_, select

from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.app_tables import StoredResponse
from tokenmill.store.db import Database

MAX_CHAIN = 1000
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
Order = Literal["asc", "desc"]
Bodies = list[dict[str, Any]]


def no_such_response(response_id: str, param: str = "response_id") -> NotFound:
    return NotFound(f"No response found with id '{response_id}'.", param=param, code="not_found")


@dataclass(frozen=True, slots=True)
class Saved:
    body: dict[str, Any]
    input_items: list[dict[str, Any]]
    include: frozenset[str]


@dataclass(frozen=True, slots=True)
class ItemPage:
    data: list[dict[str, Any]]
    has_more: bool

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": self.data,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
            "has_more": self.has_more,
        }


class ResponseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def save(
        self,
        tenant_id: str,
        key_id: str,
        body: dict[str, Any],
        input_items: list[dict[str, Any]],
        include: frozenset[str],
        created_at: datetime,
    ) -> None:
        with self._db.session() as session:
            session.merge(
                StoredResponse(
                    id=body["id"],
                    tenant_id=tenant_id,
                    key_id=key_id,
                    model=body["model"],
                    status=body["status"],
                    previous_response_id=body.get("previous_response_id"),
                    body=body,
                    input_items=input_items,
                    include=sorted(include),
                    created_at=created_at,
                )
            )

    def get(self, tenant_id: str, response_id: str) -> Saved:
        with self._db.session() as session:
            row = session.get(StoredResponse, response_id)
            if row is None or row.tenant_id != tenant_id:
                raise no_such_response(response_id)
            return Saved(dict(row.body), builtins.list(row.input_items), frozenset(row.include))

    def list(
        self, tenant_id: str, *, limit: int = DEFAULT_LIST_LIMIT, after: str | None = None
    ) -> ItemPage:
        """The tenant's responses, newest first; ``after`` is the last id already seen."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(
                f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
            )
        query = select(StoredResponse).where(StoredResponse.tenant_id == tenant_id)
        with self._db.session() as session:
            if after is not None:
                cursor = session.get(StoredResponse, after)
                if cursor is None or cursor.tenant_id != tenant_id:
                    raise no_such_response(after, "after")
                query = query.where(
                    or_(
                        StoredResponse.created_at < cursor.created_at,
                        and_(
                            StoredResponse.created_at == cursor.created_at,
                            StoredResponse.id < cursor.id,
                        ),
                    )
                )
            order = (StoredResponse.created_at.desc(), StoredResponse.id.desc())
            rows = builtins.list(session.scalars(query.order_by(*order).limit(limit + 1)))
            return ItemPage([dict(row.body) for row in rows[:limit]], has_more=len(rows) > limit)

    def delete(self, tenant_id: str, response_id: str) -> None:
        with self._db.session() as session:
            row = session.get(StoredResponse, response_id)
            if row is None or row.tenant_id != tenant_id:
                raise no_such_response(response_id)
            session.delete(row)

    def conversation(self, tenant_id: str, response_id: str, app_id: str | None = None) -> Bodies:
        """Every item of the conversation up to and including ``response_id``'s output,
        oldest first: the history a response that continues it starts from. With ``app_id``
        (an App's own key asks), only a conversation held with that App: another is not
        there for it."""
        chain: builtins.list[StoredResponse] = []
        with self._db.session() as session:
            next_id: str | None = response_id
            while next_id is not None:
                row = session.get(StoredResponse, next_id)
                if (
                    row is None
                    or row.tenant_id != tenant_id
                    or (app_id is not None and _app_of(row) != app_id)
                ):
                    raise no_such_response(next_id, "previous_response_id")
                chain.append(row)
                if len(chain) > MAX_CHAIN:
                    raise InvalidRequest(
                        f"The conversation is longer than {MAX_CHAIN} responses.",
                        param="previous_response_id",
                    )
                next_id = row.previous_response_id
            items: builtins.list[dict[str, Any]] = []
            for row in reversed(chain):
                items.extend(row.input_items)
                items.extend(row.body.get("output") or ())
        return items

    def input_items(
        self,
        tenant_id: str,
        response_id: str,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        after: str | None = None,
        order: Order = "desc",
    ) -> ItemPage:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(
                f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
            )
        items = self.get(tenant_id, response_id).input_items
        if order == "desc":
            items = items[::-1]
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise InvalidRequest(f"No input item found with id '{after}'.", param="after")
            items = items[ids.index(after) + 1 :]
        return ItemPage(items[:limit], has_more=len(items) > limit)


def _app_of(row: StoredResponse) -> str | None:
    prompt = row.body.get("prompt")
    return prompt.get("id") if isinstance(prompt, dict) else None
