"""A dedicated fleet for one tenant's model, sized by replaying its trace in the simulator.

The fleet is the simulator's ``always_on`` policy (a replica alone on each accelerator, never
scaled) and its size the least whose replay keeps at least 99% of the requests within the
simulator's SLO (``tokenmill.sim.metrics``): exactly what ``tokenmill sim --policies always_on
--search`` finds on the same requests. A scheduled fleet has its own size for each hour of the
day, found on that hour's requests of every day in the window, laid end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tokenmill.advice.trace import SECONDS_PER_DAY
from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS as KINDS
from tokenmill.sim.metrics import Summary
from tokenmill.sim.perf import ARCHITECTURES, CPU_CALIBRATION, model_spec
from tokenmill.sim.run import Scenario, Workload, simulate
from tokenmill.sim.search import SLO_TARGET, smallest_fleet
from tokenmill.sim.workload import MOONCAKE_BLOCK_TOKENS, SimRequest, TraceRow

MOST_ACCELERATORS = 4096
SECONDS_PER_HOUR = 3600.0
# Requests one replay may hold: a longer window is replayed on its busiest days (a fleet that
# holds them holds the quieter ones), fewer of them at a larger volume factor.
REPLAY_BUDGET = 200_000


@dataclass(frozen=True, slots=True)
class CostModel:
    """How one replica of the model runs: our engine's CPU calibration, or an architecture's
    datasheet model on an accelerator kind (``llama3.1-8b@H100-80GB``)."""

    architecture: str
    accelerator: str | None = None  # None: the CPU calibration
    calibration: str = CPU_CALIBRATION

    @classmethod
    def parse(cls, text: str) -> CostModel:
        if text == "cpu":
            return cls("smollm2-135m")
        architecture, at, accelerator = text.partition("@")
        if not at or architecture not in ARCHITECTURES or accelerator not in KINDS:
            raise ValueError(
                f"a cost model is 'cpu' or ARCHITECTURE@ACCELERATOR, not {text!r}; "
                f"architectures: {', '.join(sorted(ARCHITECTURES))}; "
                f"accelerators: {', '.join(sorted(KINDS))}"
            )
        return cls(architecture, accelerator)

    @property
    def name(self) -> str:
        return "cpu" if self.accelerator is None else f"{self.architecture}@{self.accelerator}"

    @property
    def accelerator_name(self) -> str:
        return self.accelerator or "cpu"

    def scenario(self) -> Scenario:
        if self.accelerator is None:
            return Scenario(calibration=self.calibration, accelerators_per_node=1)
        return Scenario(accelerator=self.accelerator)


def replay(rows: Sequence[TraceRow], cost_model: CostModel, accelerators: int) -> Summary:
    """``rows`` served by ``accelerators`` always-on replicas (at least one row)."""
    spec = model_spec("tenant-model", cost_model.architecture)
    requests = [
        SimRequest(i, row.arrival_seconds, spec.model_id, row.prompt_tokens, row.output_tokens)
        for i, row in enumerate(rows)
    ]
    workload = Workload([spec], requests, MOONCAKE_BLOCK_TOKENS, "a tenant's usage records")
    return simulate(cost_model.scenario(), workload, "always_on", accelerators).summary


@dataclass(slots=True)
class FleetSizer:
    """Smallest always-on fleets, remembered per trace so a search reuses what it learnt:
    a larger volume never needs fewer accelerators, a smaller one never more."""

    cost_model: CostModel
    target: float = SLO_TARGET
    sizes: dict[float, int | None] = field(default_factory=dict)  # by volume factor
    runs: dict[tuple[float, int], Summary] = field(default_factory=dict)

    def utilisation(self, factor: float = 1.0) -> float | None:
        """How busy the smallest fleet found at ``factor`` keeps its accelerators."""
        size = self.sizes.get(factor)
        run = self.runs.get((factor, size)) if size else None
        return None if run is None else run.busy_utilisation

    def serves(self, rows: Sequence[TraceRow], factor: float, accelerators: int) -> bool:
        """Whether ``accelerators`` hold ``rows`` (the traffic at ``factor``) within the SLO."""
        if factor in self.sizes:
            known = self.sizes[factor]
            return known is not None and accelerators >= known
        key = (factor, accelerators)
        if key not in self.runs:
            self.runs[key] = replay(rows, self.cost_model, accelerators)
        return self.runs[key].slo_attainment >= self.target

    def smallest(self, rows: Sequence[TraceRow], factor: float = 1.0) -> int | None:
        """None: even ``MOST_ACCELERATORS`` miss the target."""
        if factor in self.sizes:
            return self.sizes[factor]
        if not rows:
            self.sizes[factor] = 0
            return 0
        low = max([1] + [s for f, s in self.sizes.items() if f < factor and s is not None])
        above = [s for f, s in self.sizes.items() if f > factor and s is not None]
        most = min(above) if above else MOST_ACCELERATORS
        low = min(low, most)

        def measure(n: int) -> float:
            key = (factor, n)
            if key not in self.runs:
                self.runs[key] = replay(rows, self.cost_model, n)
            return self.runs[key].slo_attainment

        # double until the target is met, giving up when doubling gains nothing: the misses
        # are not for want of accelerators (a prompt longer than a replica's cache, say)
        start = low
        while measure(start) < self.target and start < most:
            bigger = min(most, 2 * start)
            if measure(bigger) <= measure(start) and measure(bigger) < self.target:
                self.sizes[factor] = None
                return None
            low, start = start + 1, bigger
        found = smallest_fleet(measure, start=start, low=min(low, start), most=most,
                               target=self.target)  # fmt: skip
        self.sizes[factor] = found.smallest_accelerators
        return found.smallest_accelerators


def busiest_days(
    rows: Sequence[TraceRow], span_seconds: float, most_requests: float
) -> tuple[list[TraceRow], float]:
    """The whole trace if it fits in ``most_requests``, else its busiest days (at least one)
    laid end to end; with the span they cover."""
    if len(rows) <= most_requests or span_seconds <= SECONDS_PER_DAY:
        return list(rows), span_seconds
    by_day: dict[int, list[TraceRow]] = {}
    for row in rows:
        by_day.setdefault(int(row.arrival_seconds // SECONDS_PER_DAY), []).append(row)
    chosen: list[int] = []
    total = 0
    for day in sorted(by_day, key=lambda d: (-len(by_day[d]), d)):
        if chosen and total + len(by_day[day]) > most_requests:
            break
        chosen.append(day)
        total += len(by_day[day])
    out = [
        TraceRow(index * SECONDS_PER_DAY + row.arrival_seconds - day * SECONDS_PER_DAY,
                 row.prompt_tokens, row.output_tokens)
        for index, day in enumerate(sorted(chosen))
        for row in by_day[day]
    ]  # fmt: skip
    return out, len(chosen) * SECONDS_PER_DAY


def hour_slots(rows: Sequence[TraceRow], offset_seconds: float) -> list[list[TraceRow]]:
    """For each hour of the day (UTC), its requests of every day laid end to end: day d's
    hour starts at ``d * 3600`` seconds. ``offset_seconds``: the window's start, in seconds
    after its day's midnight."""
    slots: list[list[TraceRow]] = [[] for _ in range(24)]
    for row in rows:
        moment = row.arrival_seconds + offset_seconds
        day, within_day = divmod(moment, SECONDS_PER_DAY)
        hour, within = divmod(within_day, SECONDS_PER_HOUR)
        slots[int(hour)].append(
            TraceRow(day * SECONDS_PER_HOUR + within, row.prompt_tokens, row.output_tokens)
        )
    for slot in slots:
        slot.sort(key=lambda row: row.arrival_seconds)
    return slots


def scheduled_fleet(
    rows: Sequence[TraceRow], cost_model: CostModel, offset_seconds: float
) -> list[int | None]:
    """The smallest fleet for each hour of the day (0 where the hour has no requests)."""
    sizes: list[int | None] = []
    for slot in hour_slots(rows, offset_seconds):
        sizes.append(FleetSizer(cost_model).smallest(slot))
    return sizes
