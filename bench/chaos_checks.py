"""The chaos benchmark's verdicts: when a fault was recovered from, and whether the money
is right, read from the database itself.

Invariants, over the requests the clients made up to a moment:
- metered: every request the clients saw produce tokens has exactly one usage record and
  exactly one debit in the ledger (``usage:<request id>``), of the record's cost (reported
  besides: records that count fewer tokens than the client received, as a request a killed
  gateway was streaming is billed from its journal's last progress record);
- no phantom usage: no usage record of the run's tenants for a request the clients did not
  make (records with ids the clients never saw are at most the requests that got no answer);
- no tenant's balance below zero;
- statements agree with the ledger: each month's statement total is the sum of its lines
  (usage records) and its closing balance is the ledger's sum.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from bench.chaos_load import Outcome
from tokenmill.billing.ledger import EntryKind, usage_idempotency_key
from tokenmill.billing.statements import Reports
from tokenmill.store.db import Database
from tokenmill.store.tables import LedgerEntry, UsageRecord

WINDOW_SECONDS = 5.0  # recovered: a window this long with no failure and a normal rate
STEP_SECONDS = 0.5
NORMAL_SHARE = 0.5  # of the baseline rate of answered requests
RECORDS_WAIT_SECONDS = 45.0  # for usage still on its way (journal, recorder, replay)
STATEMENT_READS = 5


def recovered_at(
    outcomes: Sequence[Outcome], since: float, until: float, normal_per_window: float
) -> float | None:
    """After the last failure in [since, until): the start of the first window in which at
    least ``normal_per_window`` requests were answered; None if there is none yet."""
    failures = [o.ended for o in outcomes if o.failed and since <= o.ended < until]
    answered = sorted(o.ended for o in outcomes if o.ok and since <= o.ended < until)
    start = max(failures, default=since)
    while start + WINDOW_SECONDS <= until:
        inside = sum(start <= t < start + WINDOW_SECONDS for t in answered)
        if inside >= normal_per_window:
            return start
        start += STEP_SECONDS
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def months_between(first: datetime, last: datetime) -> list[str]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


class Books:
    """The run's tenants' usage records and ledger, as they stand in the database."""

    def __init__(self, db: Database, tenant_ids: list[str]) -> None:
        self.db = db
        self.tenant_ids = tenant_ids

    def read(self) -> dict[str, Any]:
        with self.db.session() as session:
            records = {
                row.request_id: row
                for row in session.execute(
                    select(
                        UsageRecord.request_id,
                        UsageRecord.tenant_id,
                        UsageRecord.status,
                        UsageRecord.completion_tokens,
                        UsageRecord.cost_micros,
                        UsageRecord.created_at,
                    ).where(UsageRecord.tenant_id.in_(self.tenant_ids))
                )
            }
            debits: dict[str, list[int]] = {}
            for key, amount in session.execute(
                select(LedgerEntry.idempotency_key, LedgerEntry.amount_micros).where(
                    LedgerEntry.tenant_id.in_(self.tenant_ids),
                    LedgerEntry.kind == EntryKind.USAGE.value,
                )
            ):
                debits.setdefault(key, []).append(amount)
            balances = dict.fromkeys(self.tenant_ids, 0)
            for tenant_id, total in session.execute(
                select(LedgerEntry.tenant_id, func.sum(LedgerEntry.amount_micros))
                .where(LedgerEntry.tenant_id.in_(self.tenant_ids))
                .group_by(LedgerEntry.tenant_id)
            ):
                balances[tenant_id] = int(total)
        return {"records": records, "debits": debits, "balances": balances}

    def statements(self, months: list[str]) -> list[dict[str, Any]]:
        """Each tenant's statements against the ledger. Under load, usage lands between the
        reads, so a disagreement is read again (a few times) before it counts."""
        for _ in range(STATEMENT_READS):
            rows = self._statements(months, self.read()["balances"])
            if all(row["agrees"] for row in rows):
                break
            time.sleep(0.5)
        return rows

    def _statements(self, months: list[str], balances: dict[str, int]) -> list[dict[str, Any]]:
        reports = Reports(self.db)
        rows = []
        for tenant_id in self.tenant_ids:
            for month in months:
                statement = reports.statement(tenant_id, month)
                lines = sum(line.cost_micros for line in statement.lines)
                rows.append(
                    {
                        "tenant": tenant_id,
                        "month": month,
                        "total_micros": statement.usage_micros,
                        "lines_micros": lines,
                        "closing_micros": statement.closing_balance_micros,
                        "ledger_micros": balances[tenant_id],
                    }
                )
        last = months[-1]
        for row in rows:
            row["agrees"] = row["total_micros"] == row["lines_micros"] and (
                row["month"] != last or row["closing_micros"] == row["ledger_micros"]
            )
        return rows


def check(
    books: Books,
    outcomes: Sequence[Outcome],
    began_utc: datetime,
    in_flight: int = 0,
    until_utc: datetime | None = None,
) -> dict[str, Any]:
    """The invariants over ``outcomes`` (the requests that ended by ``until_utc``), with
    ``in_flight`` requests not among them yet (begun by then, their records may be there
    already; later ones are not counted); usage still on its way is waited for a while
    (longer at the end, when nothing is in flight)."""
    deadline = time.monotonic() + RECORDS_WAIT_SECONDS * (1 if in_flight else 2)
    produced = [o for o in outcomes if o.chunks > 0 and o.request_id]
    while True:
        state = books.read()
        records, debits = state["records"], state["debits"]
        unmetered = [o.request_id for o in produced if o.request_id not in records]
        if not unmetered or time.monotonic() > deadline:
            break
        time.sleep(2)
    debit_problems, short = [], []
    for o in produced:
        record = records.get(o.request_id)
        if record is None:
            continue
        amounts = debits.get(usage_idempotency_key(record.request_id), [])
        if amounts != [-record.cost_micros] and not (record.cost_micros == 0 and not amounts):
            debit_problems.append({"request_id": o.request_id, "cost": record.cost_micros,
                                   "debits": amounts})  # fmt: skip
        if record.completion_tokens < o.chunks:
            short.append({"request_id": o.request_id, "billed": record.completion_tokens,
                          "received": o.chunks})  # fmt: skip
    seen_ids = {o.request_id for o in outcomes if o.request_id}
    unanswered = sum(o.request_id is None for o in outcomes)
    phantom = [
        rid
        for rid, record in records.items()
        if rid not in seen_ids and (until_utc is None or _aware(record.created_at) < until_utc)
    ]
    balances = state["balances"]
    months = months_between(began_utc, datetime.now(UTC))
    statements = books.statements(months)
    result = {
        "requests": len(outcomes),
        "produced_tokens": len(produced),
        "usage_records": len(records),
        "unmetered": unmetered[:20],
        "unmetered_count": len(unmetered),
        "debit_mismatches": debit_problems[:20],
        "debit_mismatch_count": len(debit_problems),
        "billed_fewer_tokens_than_received": short[:20],
        "short_count": len(short),
        "records_of_unknown_requests": len(phantom),
        "requests_without_answer": unanswered,
        "balances_micros": balances,
        "statements": statements,
    }
    result["ok"] = {
        "metered": not unmetered and not debit_problems,
        "no_phantom_usage": len(phantom) <= unanswered + in_flight,
        "balances_non_negative": all(value >= 0 for value in balances.values()),
        "statements_match_ledger": all(row["agrees"] for row in statements),
    }
    result["all_ok"] = all(result["ok"].values())
    return result


def print_table(faults: list[dict[str, Any]], total: dict[str, Any]) -> None:
    print(f"\n{'fault':<30} {'held s':>7} {'requests':>9} {'ok':>6} {'quota':>6} "
          f"{'failed':>7} {'recover s':>10} {'invariants':>10}  failed by status")  # fmt: skip
    for fault in faults:
        tally, recover = fault["tally"], fault["recover_seconds"]
        recovered = "never" if recover is None else f"{recover:.1f}"
        invariants = fault.get("invariants", {})
        verdict = "ok" if invariants.get("all_ok") else "FAIL"
        print(
            f"{fault['name'][:30]:<30} {fault['held_seconds']:>7.1f} {tally['requests']:>9} "
            f"{tally['ok']:>6} {tally['refused_quota']:>6} {tally['failed']:>7} "
            f"{recovered:>10} {verdict:>10}  {tally['failed_by_status'] or '-'}"
        )
    print(f"{'total':<30} {'':>7} {total['requests']:>9} {total['ok']:>6} "
          f"{total['refused_quota']:>6} {total['failed']:>7} {'':>10} {'':>10}  "
          f"{total['failed_by_status'] or '-'}")  # fmt: skip
    for fault in faults:
        invariants = fault.get("invariants", {})
        bad = [name for name, ok in invariants.get("ok", {}).items() if not ok]
        if bad:
            print(f"  {fault['name']}: invariants broken: {', '.join(bad)}")
        if invariants.get("short_count"):
            short = invariants["billed_fewer_tokens_than_received"][:3]
            print(f"  {fault['name']}: {invariants['short_count']} requests billed fewer tokens "
                  f"than delivered: {short}")  # fmt: skip
