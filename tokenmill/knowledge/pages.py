"""OpenAI's list pages over a table: ``limit``, ``order`` by creation, ``after``/``before``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from tokenmill.errors import InvalidRequest

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20
ORDERS = ("asc", "desc")


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidRequest(
            f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
        )


def check_page(limit: int, order: str) -> None:
    check_limit(limit)
    if order not in ORDERS:
        raise InvalidRequest(
            f"Invalid 'order': {order!r}; expected 'asc' or 'desc'.", param="order"
        )


def page(
    session: Session,
    query: Any,
    created: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[str],
    cursor_query: Callable[[str], Any],
    *,
    limit: int,
    order: str,
    after: str | None,
    before: str | None,
) -> tuple[list[Any], bool]:
    """Rows of ``query`` in creation order (ties by ``key``): the ``limit`` after ``after``, or
    the ``limit`` nearest before ``before``, always returned in the listing's order."""
    check_page(limit, order)
    ascending = order == "asc"
    if before is not None:
        ascending = not ascending  # walk backwards from the cursor, then turn the page round
    cursor_id = before if before is not None else after
    if cursor_id is not None:
        cursor = session.execute(cursor_query(cursor_id)).one_or_none()
        if cursor is None:
            param = "before" if before is not None else "after"
            raise InvalidRequest(f"Invalid '{param}': no such id {cursor_id!r}.", param=param)
        at, ident = cursor
        if ascending:
            query = query.where(or_(created > at, and_(created == at, key > ident)))
        else:
            query = query.where(or_(created < at, and_(created == at, key < ident)))
    if ascending:
        query = query.order_by(created, key)
    else:
        query = query.order_by(created.desc(), key.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
    return rows, has_more
