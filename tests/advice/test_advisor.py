"""The advice on a tenant's own usage records: the bills agree with the ledger, the errors name
what to fix, and the recommendation follows the price of an accelerator-hour."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.advice.conftest import END, MODEL, START, every, price_hours, requests, write
from tokenmill.advice.advisor import Advisor, advise_trace, bills
from tokenmill.advice.replay import CostModel, FleetSizer
from tokenmill.advice.trace import TenantTrace, extract
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import install_accelerator_prices
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest
from tokenmill.fleet.replicas import accelerator_charge_micros
from tokenmill.sim.workload import TraceRow
from tokenmill.store.db import Database

HUGE = 10**9  # micros an accelerator-hour: serverless wins
CPU = CostModel.parse("cpu")


@pytest.fixture
def advisor(database: Database, clock: ManualClock) -> Advisor:
    return Advisor(database, PriceBookRepository(database, clock), clock)


@pytest.fixture
def alpha(database: Database, clock: ManualClock) -> str:
    return TenantRepository(database, clock).create("alpha").id


def test_the_serverless_bill_is_what_the_ledger_debited(
    database: Database, clock: ManualClock, advisor: Advisor, alpha: str
) -> None:
    beta = TenantRepository(database, clock).create("beta").id
    price_hours(database, clock, MODEL, HUGE)
    write(database, [
        *requests(alpha, every(START, 2, 6), cost_micros=1_500),
        *requests(alpha, [START + timedelta(minutes=20)], cost_micros=999, prompt_tokens=0,
                  cached_tokens=0, name="refused"),
        *requests(alpha, [START - timedelta(seconds=1), END], cost_micros=5_000, name="out"),
        *requests(alpha, [START + timedelta(minutes=30)], model="other", cost_micros=7, name="o"),
        *requests(beta, every(START, 2, 4), cost_micros=2_000),
    ])  # fmt: skip

    advice = advisor.advise(alpha, MODEL, START, END)

    debits = LedgerRepository(database, clock).entries(
        alpha, since=START, until=END, kinds=[EntryKind.USAGE]
    )
    assert {e.model for e in debits} == {MODEL, "other"}
    spent: Counter[str] = Counter()
    for entry in debits:
        if entry.model == MODEL:
            spent[entry.created_at.strftime("%Y-%m")] -= entry.amount_micros
    assert advice.trace.serverless_micros_by_month == dict(spent)
    assert advice.trace.serverless_micros == sum(spent.values()) == 12 * 1_500 + 999
    assert len(advice.trace.rows) == 12
    assert [(m.month, m.requests, m.serverless_micros) for m in advice.months] == [
        ("2026-01", 6, 6 * 1_500 + 999),
        ("2026-02", 6, 6 * 1_500),
    ]
    assert advice.always_on == 1
    assert [m.always_on_micros for m in advice.months] == [HUGE, HUGE]  # an hour in each
    assert advice.recommendation == "serverless"
    assert advisor.models(alpha, START, END) == ["other", MODEL]
    body = advice.as_json()
    assert (body["tenant_id"], body["model"], body["cost_model"]) == (alpha, MODEL, "cpu")
    assert body["serverless_micros"] == advice.trace.serverless_micros
    assert [m["dedicated_always_on_micros"] for m in body["months"]] == [HUGE, HUGE]


def test_the_recommendation_follows_the_price_of_an_accelerator_hour(
    database: Database, advisor: Advisor, alpha: str
) -> None:
    day = datetime(2026, 1, 20, tzinfo=UTC)
    write(database, requests(alpha, every(day, 24, 3)))  # every hour of the day alike
    trace = advisor.trace(alpha, MODEL, day, day + timedelta(days=1))
    sizer = FleetSizer(CPU)  # the replays, shared by both prices

    cheap, dear = (
        advise_trace(alpha, trace, CPU, hour, lambda message: None, grid=(1.0,), sizer=sizer)
        for hour in (1, HUGE)
    )

    assert (cheap.always_on, cheap.scheduled) == (1, [1] * 24)
    assert cheap.recommendation == "dedicated"
    assert cheap.reasons[1] == "1 cpu always on hold your traffic within the SLO."
    assert dear.recommendation == "serverless"
    assert dear.reasons[0].startswith("Serverless is cheaper")


def test_a_quiet_tenant_s_curve_never_has_a_fleet_of_no_accelerators() -> None:
    # 12 requests in two hours, a tenth of them as many users (thinned at random): maybe
    # none at all, and a fleet of no accelerators costs nothing
    trace = extract(requests("ten_a", every(START, 2, 6)), MODEL, START, END)

    advice = advise_trace("ten_a", trace, CPU, HUGE, lambda message: None, scaling="users")

    assert (advice.recommendation, advice.curve.beyond) == ("serverless", "above")
    sizes = [advice.curve_sizes.get(p.factor) for p in advice.curve.points]
    assert all(p.dedicated_micros >= HUGE for p in advice.curve.points), sizes


@pytest.mark.parametrize(("scaling", "fewest", "most"), [("arrivals", 60, 60), ("users", 1, 19)])
def test_below_its_own_volume_the_whole_trace_is_replayed_slowed_down(
    scaling: str, fewest: int, most: int
) -> None:
    # as the same arrivals slower, all of them over ten times the window (not its first tenth);
    # as fewer users, about a tenth of them over the window
    trace = extract(requests("ten_a", every(START, 2, 30)), MODEL, START, END)
    sizer = FleetSizer(CPU)

    advise_trace("ten_a", trace, CPU, HUGE, print, grid=(0.1, 1.0), sizer=sizer, scaling=scaling)

    replayed = {factor: run.requests for (factor, _), run in sizer.runs.items()}
    assert replayed[1.0] == 60
    assert fewest <= replayed[0.1] <= most


def test_without_requests_in_the_window_there_is_no_advice(
    database: Database, clock: ManualClock, advisor: Advisor, alpha: str
) -> None:
    price_hours(database, clock, MODEL, 1)
    write(database, requests(alpha, [END + timedelta(hours=1)]))

    with pytest.raises(InvalidRequest) as refused:
        advisor.advise(alpha, MODEL, START, END)

    assert refused.value.param == "model"


def test_a_model_without_a_known_cost_model_is_refused_naming_cost_model(
    advisor: Advisor, alpha: str
) -> None:
    for model, cost_model in [
        ("other", None),
        (MODEL, "tpu"),
        (MODEL, "llama3.1-8b@TPU-v9"),
        (MODEL, "gpt-9@L4"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            advisor.advise(alpha, model, START, END, cost_model)

        assert refused.value.param == "cost_model", cost_model
        if cost_model is None:
            assert "pass cost_model=ARCHITECTURE@ACCELERATOR" in refused.value.message


def test_accelerator_hours_come_from_the_price_book(
    database: Database, clock: ManualClock, advisor: Advisor
) -> None:
    h100 = CostModel.parse("llama3.1-8b@H100-80GB")
    with pytest.raises(InvalidRequest) as refused:
        advisor.accelerator_price("own", h100)
    assert refused.value.param == "cost_model"
    assert "accelerator:H100-80GB" in refused.value.message

    price_hours(database, clock, "own", 5_000_000)
    assert advisor.accelerator_price("own", h100) == 5_000_000  # the model's own
    install_accelerator_prices(PriceBookRepository(database, clock))
    assert advisor.accelerator_price("own", h100) == 2_990_000  # the kind's, when set
    assert advisor.accelerator_price("own", CPU) == 5_000_000
    with pytest.raises(InvalidRequest):
        advisor.accelerator_price(MODEL, CPU)


def test_the_price_book_entry_the_refusal_names_for_a_cpu_is_the_one_read(
    database: Database, clock: ManualClock, advisor: Advisor
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        advisor.accelerator_price(MODEL, CPU)
    assert "'accelerator:cpu'" in refused.value.message  # "set one in the price book"

    price_hours(database, clock, "accelerator:cpu", 40_000)

    assert advisor.accelerator_price(MODEL, CPU) == 40_000


def test_the_window_defaults_to_thirty_days_to_now_and_must_not_run_backwards(
    advisor: Advisor, clock: ManualClock
) -> None:
    now = clock.utcnow()
    assert advisor.window(None, None, None) == (now - timedelta(days=30), now)
    assert advisor.window(None, END, 2) == (END - timedelta(days=2), END)
    assert advisor.window(START, END, 2) == (START, END)
    with pytest.raises(InvalidRequest) as refused:
        advisor.window(END, START, None)
    assert refused.value.param == "since"


def test_monthly_bills_charge_accelerator_time_as_the_ledger_does() -> None:
    # 22:00:00.5 on 31 January to 01:00:00.25 on 1 February: 7,199.5 s, then 3,600.25 s
    start = datetime(2026, 1, 31, 22, 0, 0, 500_000, tzinfo=UTC)
    trace = TenantTrace(MODEL, start, datetime(2026, 2, 1, 1, 0, 0, 250_000, tzinfo=UTC))
    trace.serverless_micros_by_month = {"2026-01": 70, "2026-02": 30}
    trace.requests_by_month = {"2026-02": 3}
    scheduled = [0] * 24
    scheduled[22], scheduled[23], scheduled[0], scheduled[1] = 1, 3, 2, 4
    hour = 3_600_001  # a second is 1,000.000277 micros: every rounding shows

    months = bills(trace, 2, scheduled, hour)

    assert [(m.month, m.requests, m.serverless_micros) for m in months] == [
        ("2026-01", 0, 70),
        ("2026-02", 3, 30),
    ]
    # as fleet.replicas charges a dedicated replica: the hourly price times the seconds,
    # rounded to the nearest micro. Always on: 2 x 7,199.5 = 14,399 s; 2 x 3,600.25 = 7,200.5 s
    charged = [accelerator_charge_micros(s, 1, hour) for s in (14_399, 7_200.5)]
    assert [m.always_on_micros for m in months] == charged == [14_399_004, 7_200_502]
    # by the hour: 3,599.5 + 3 x 3,600 = 14,399.5 s; 2 x 3,600 + 4 x 0.25 = 7,201 s
    assert [m.scheduled_micros for m in months] == [14_399_504, 7_201_002]
    unknown = bills(trace, None, [None] * 24, hour)
    assert [(m.always_on_micros, m.scheduled_micros) for m in unknown] == [(None, None)] * 2


def test_a_window_starting_within_an_hour_sizes_the_clock_s_hours() -> None:
    start = datetime(2026, 1, 10, 22, 30, tzinfo=UTC)
    late = requests("ten_a", every(start + timedelta(minutes=35), 0.25, 40))  # 23:05 to 23:20
    trace = extract(late, MODEL, start, start + timedelta(hours=2))

    advice = advise_trace("ten_a", trace, CPU, 1, lambda message: None, grid=(1.0,))

    assert advice.scheduled[23] == 1
    assert advice.scheduled[:23] == [0] * 23


def test_the_same_window_written_with_another_offset_gives_the_same_advice() -> None:
    # what the admin route passes on for since=2026-02-01T01:00:00+02:00
    plus_two = timezone(timedelta(hours=2))
    events = requests("ten_a", every(START, 2, 6))
    utc = extract(events, MODEL, START, END)
    offset = extract(events, MODEL, START.astimezone(plus_two), END.astimezone(plus_two))

    advised = [
        advise_trace("ten_a", trace, CPU, 1, lambda message: None, grid=(1.0,))
        for trace in (utc, offset)
    ]

    assert [m.month for m in advised[0].months] == ["2026-01", "2026-02"]
    assert advised[1].scheduled == advised[0].scheduled
    assert advised[1].months == advised[0].months


def test_traffic_no_fleet_holds_is_advised_serverless_with_no_dedicated_bill() -> None:
    # prompts longer than a replica's whole KV cache are refused: no fleet meets the SLO
    too_long = [TraceRow(60.0 * i, 10_000_000, 5) for i in range(3)]
    trace = TenantTrace(MODEL, START, END, too_long)
    trace.serverless_micros_by_month = {"2026-01": 3_000}

    advice = advise_trace("ten_a", trace, CPU, 1, lambda message: None, grid=(1.0,))
    shown = advice.as_json()

    assert advice.always_on is None
    assert advice.recommendation == "serverless"
    assert advice.reasons[0].startswith("No dedicated fleet of cpu tried keeps 99%")
    assert shown["monthly_at_volume"]["always_on_micros"] is None
    assert shown["curve"][0]["dedicated_monthly_micros"] is None
    assert shown["curve"][0]["accelerators"] is None
