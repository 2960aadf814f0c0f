"""The soak benchmark's probes, arithmetic and tables (``bench/soak.py``).

Readers of ``/proc`` for a process tree (RSS, open file descriptors, TCP connections, threads
of each process); the pure parts of the verdict (least-squares slopes, flatness, latency
percentiles in time windows, the run's summary); and the tables it is printed as. The readers
only read; everything else is a function of its arguments.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
TCP_LISTEN = "0A"  # /proc/net/tcp's state column, in hex

# Flat after warm-up: RSS grows by less than this share of its warm value per 10 minutes;
# counts (file descriptors, TCP connections, threads) by less than this many per 10 minutes.
RSS_GROWTH_SHARE_PER_10_MIN = 0.02
COUNT_GROWTH_PER_10_MIN = 1.0
# p99 is stable when the last window's is at most this many times the first post-warm-up one.
P99_RATIO_LIMIT = 1.5
METRICS = ("rss_mib", "fds", "tcp", "threads")


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    start_ticks: int  # when it started (clock ticks after boot): tells a reused pid apart
    threads: int
    cmdline: tuple[str, ...]


def read_proc(pid: int) -> Proc | None:
    """One process from ``/proc/<pid>``; None when it is gone (or is a kernel thread)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    if not cmdline:
        return None
    return Proc(pid, int(fields[1]), int(fields[19]), int(fields[17]), cmdline)


def process_tree(root: int) -> list[Proc]:
    """``root`` and all its descendants, found by walking every process's parent id."""
    procs = [p for p in (read_proc(int(d)) for d in os.listdir(PROC) if d.isdigit()) if p]
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    tree = [p for p in procs if p.pid == root]
    for proc in tree:  # grows while it is walked: breadth first
        tree.extend(children.get(proc.pid, []))
    return tree


def role_of(proc: Proc, root: int) -> str:
    """``serve`` (the process started), ``replica <served name>`` (``tokenmill.engine`` or a
    module of it, as ``tokenmill.engine.embed``), ``gateway`` (a ``tokenmill gateway`` worker)
    or ``other <program>``."""
    args = proc.cmdline
    if proc.pid == root:
        return "serve"
    if any(a == "tokenmill.engine" or a.startswith("tokenmill.engine.") for a in args):
        name = args[args.index("--served-name") + 1] if "--served-name" in args[:-1] else "?"
        return f"replica {name}"
    if "gateway" in args:
        return "gateway"
    program = next((a for a in args[1:] if not a.startswith("-")), args[0])
    return f"other {Path(program).name[:24]}"


def alive(pid: int, start_ticks: int) -> bool:
    """Whether the process that had this pid and start time still runs."""
    proc = read_proc(pid)
    return proc is not None and proc.start_ticks == start_ticks


def tcp_states(pid: int) -> dict[int, str]:
    """Socket inode → TCP state, for the network namespace ``pid`` lives in."""
    states: dict[int, str] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = (PROC / str(pid) / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            states[int(fields[9])] = fields[3]
    return states


def measure(proc: Proc, tcp: dict[int, str]) -> dict[str, float] | None:
    """RSS (MiB), open file descriptors, TCP connections (not listening sockets) and threads
    of one process; None when it is gone."""
    base = PROC / str(proc.pid)
    try:
        resident_pages = int((base / "statm").read_text().split()[1])
        fds = os.listdir(base / "fd")
    except OSError:
        return None
    connections = 0
    for fd in fds:
        try:
            target = os.readlink(base / "fd" / fd)
        except OSError:
            continue  # closed between listing and reading
        if target.startswith("socket:["):
            state = tcp.get(int(target[8:-1]))
            connections += state is not None and state != TCP_LISTEN
    return {
        "rss_mib": round(resident_pages * PAGE_BYTES / MIB, 2),
        "fds": len(fds),
        "tcp": connections,
        "threads": proc.threads,
    }


def parse_metrics(text: str, names: Iterable[str]) -> dict[str, float]:
    """The values of unlabelled series ``names`` in a Prometheus text page."""
    wanted = set(names)
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[name] = float(value)
    return found


# arithmetic


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(x, y)`` points; None for fewer than three."""
    if len(points) < 3:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def growth_limit_per_10_min(metric: str, warm_value: float) -> float:
    if metric == "rss_mib":
        return RSS_GROWTH_SHARE_PER_10_MIN * warm_value
    return COUNT_GROWTH_PER_10_MIN


def fit_series(samples: Sequence[dict[str, Any]], warm_seconds: float) -> list[dict[str, Any]]:
    """One fit per (process, metric) over the samples taken after warm-up: warm (first) and
    last value, slope per minute and per 10 minutes, the limit, and whether it is flat."""
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for sample in samples:
        if sample["t"] < warm_seconds:
            continue
        for process, values in sample["processes"].items():
            for metric in METRICS:
                points.setdefault((process, metric), []).append((sample["t"] / 60, values[metric]))
    fits = []
    for (process, metric), series in points.items():
        per_minute = slope(series)
        warm = series[0][1]
        limit = growth_limit_per_10_min(metric, warm)
        fits.append(
            {
                "process": process,
                "metric": metric,
                "samples": len(series),
                "warm": warm,
                "last": series[-1][1],
                "slope_per_minute": per_minute,
                "slope_per_10_minutes": None if per_minute is None else per_minute * 10,
                "limit_per_10_minutes": limit,
                "flat": None if per_minute is None else per_minute * 10 < limit,
            }
        )
    return fits


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (as ``tokenmill.billing.levels``); None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def latency_windows(
    outcomes: Sequence[dict[str, Any]],
    start_seconds: float,
    end_seconds: float,
    window_seconds: float,
    chat_ops: frozenset[str],
) -> list[dict[str, Any]]:
    """Windows of ``window_seconds`` from ``start_seconds`` (a remainder shorter than half a
    window joins the last one): requests, errors, and percentiles of chat latency (whole
    reply) and of time to first token (streams)."""
    windows = []
    begin = start_seconds
    while begin < end_seconds:
        end = begin + window_seconds
        if end_seconds - end < window_seconds / 2:
            end = end_seconds
        inside = [o for o in outcomes if begin <= o["t"] < end]
        chats = [o["seconds"] for o in inside if o["op"] in chat_ops and o["ok"]]
        firsts = [o["ttft"] for o in inside if o["ttft"] is not None and o["ok"]]
        windows.append(
            {
                "from_minute": begin / 60,
                "to_minute": end / 60,
                "requests": len(inside),
                "errors": sum(not o["ok"] for o in inside),
                "chat_p50_s": percentile(chats, 0.5),
                "chat_p99_s": percentile(chats, 0.99),
                "ttft_p50_s": percentile(firsts, 0.5),
                "ttft_p99_s": percentile(firsts, 0.99),
            }
        )
        begin = end
    return windows


def p99_ratio(windows: Sequence[dict[str, Any]]) -> float | None:
    """The last window's chat p99 over the first's (both post-warm-up)."""
    measured = [w["chat_p99_s"] for w in windows if w["chat_p99_s"]]
    if len(measured) < 2:
        return None
    return float(measured[-1] / measured[0])


def summarise(
    outcomes: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
    *,
    warm_seconds: float,
    end_seconds: float,
    window_seconds: float,
    chat_ops: frozenset[str],
    gauges: Sequence[str],
) -> dict[str, Any]:
    """The run in numbers: requests by op, each series' fit, latency windows and the p99
    ratio, failures by op and status (with the first error of each), the gauges' maxima.
    ``outcomes`` have ``t``, seconds since the load began (warm-up requests before it: < 0)."""
    loaded = [o for o in outcomes if o["t"] >= 0]
    windows = latency_windows(loaded, warm_seconds, end_seconds, window_seconds, chat_ops)
    ratio = p99_ratio(windows)
    failed = [o for o in outcomes if not o["ok"]]
    first_errors: dict[str, str | None] = {}
    for o in failed:
        first_errors.setdefault(f"{o['op']} {o['status']}", o["error"])
    return {
        "seconds": round(end_seconds, 1),
        "requests": len(loaded),
        "requests_by_op": dict(Counter(o["op"] for o in loaded)),
        "requests_per_second": len(loaded) / end_seconds if end_seconds else None,
        "series": fit_series(samples, warm_seconds),
        "windows": windows,
        "p99_ratio_last_to_first": ratio,
        "p99_stable": None if ratio is None else ratio <= P99_RATIO_LIMIT,
        "errors_by_status": dict(Counter(f"{o['op']} {o['status']}" for o in failed)),
        "first_errors": first_errors,
        "gauges_max": {
            name: max((s["metrics"].get(name, 0.0) for s in samples), default=None)
            for name in gauges
        },
    }


# the tables


def print_tables(report: dict[str, Any]) -> None:
    def number(value: float | None, width: int, digits: int = 1, sign: str = "") -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{sign}{width}.{digits}f}"

    result = report["result"]
    print(f"{result['requests']} requests in {result['seconds'] / 60:.1f} min "
          f"({result['requests_per_second'] or 0:.2f}/s): {result['requests_by_op']}")  # fmt: skip
    print(f"\n{'process':<44} {'metric':<8} {'warm':>8} {'last':>8} {'slope/10min':>12} "
          f"{'limit':>7} {'flat':>5}")  # fmt: skip
    for fit in result["series"]:
        flat = {True: "yes", False: "NO", None: "-"}[fit["flat"]]
        print(
            f"{fit['process'][:44]:<44} {fit['metric']:<8} {number(fit['warm'], 8)} "
            f"{number(fit['last'], 8)} {number(fit['slope_per_10_minutes'], 12, 2, '+')} "
            f"{number(fit['limit_per_10_minutes'], 7, 2)} {flat:>5}"
        )
    print(f"\n{'minutes':>11} {'requests':>9} {'errors':>7} {'chat p50 s':>11} "
          f"{'chat p99 s':>11} {'ttft p50 s':>11} {'ttft p99 s':>11}")  # fmt: skip
    for w in result["windows"]:
        print(
            f"{w['from_minute']:>5.1f}-{w['to_minute']:<5.1f} {w['requests']:>9} "
            f"{w['errors']:>7} {number(w['chat_p50_s'], 11, 2)} {number(w['chat_p99_s'], 11, 2)} "
            f"{number(w['ttft_p50_s'], 11, 2)} {number(w['ttft_p99_s'], 11, 2)}"
        )
    ratio = result["p99_ratio_last_to_first"]
    print(f"chat p99 last/first window: {number(ratio, 0, 2)} "
          f"(stable at <= {P99_RATIO_LIMIT})")  # fmt: skip
    print(f"errors by op and status: {result['errors_by_status'] or 'none'}")
    for kind, text in result["first_errors"].items():
        print(f"  first {kind}: {text}")
    print(f"gauges, max: {result['gauges_max']}")
    invariants = report.get("invariants")
    if invariants:
        print(f"\n{'tenant':<30} {'answered':>9} {'recorded':>9} {'sent':>6} {'recorded':>9} "
              f"{'balance $':>10}")  # fmt: skip
        for r in invariants["tenants"]:
            print(
                f"{r['tenant'][:30]:<30} {r['answered_made']:>9} {r['answered_recorded']:>9} "
                f"{r['sent']:>6} {r['recorded']:>9} {r['balance_micros'] / 1e6:>10.4f}"
            )
        print(f"usage matches: {invariants['usage_matches']}, balances >= 0: "
              f"{invariants['balances_non_negative']}")  # fmt: skip
    stop = report["stop"]
    left = stop["left_behind"] or "none"
    print(
        f"stopped by {stop['signal']} in {stop['stop_seconds']} s, exit {stop['exit_code']} "
        f"(clean: {stop['clean']}); {stop['processes']} processes seen, left behind: {left}"
    )
