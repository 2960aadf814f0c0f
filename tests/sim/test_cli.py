"""``tokenmill sim`` as a user runs it, with service tiers."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tokenmill.cli.main import main


def test_sim_with_tiers_reports_goodput_and_each_tiers_share(tmp_path: Path) -> None:
    args = ["sim", "--trace", "poisson", "--models", "1", "--rate", "20", "--duration", "120"]
    args += ["--policies", "dedicated", "--no-search", "--accelerators", "1", "--no-plots"]
    args += ["--priority-share", "0.25", "--tiers", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "goodput" in result.output and "priority" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scenario"]["tiers"] is True
    tiers = report["policies"][0]["summary"]["extra"]["tiers"]
    assert tiers["priority"]["slo_attainment"] > tiers["default"]["slo_attainment"]
    assert tiers["default"]["refused"] > 0


def test_sim_sizes_an_always_on_fleet_on_mooncake_lengths(tmp_path: Path) -> None:
    args = ["sim", "--trace", "poisson", "--models", "1", "--rate", "0.5", "--duration", "600"]
    args += [
        "--policies",
        "always_on",
        "--lengths",
        "mooncake",
        "--no-plots",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "mooncake token lengths" in result.output and "always_on" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scenario"]["lengths"] == "mooncake"
    [policy] = report["policies"]
    summary = policy["summary"]
    assert summary["policy"] == "always_on"
    assert summary["slo_attainment"] >= 0.99
    assert policy["search"]["smallest_accelerators"] == summary["accelerators"] > 1
    assert summary["accelerators_provisioned"] == summary["accelerators"]  # never scaled
