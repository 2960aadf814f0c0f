from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from tests.billing.test_usage import usage_event
from tokenmill.billing.usage import UsageRepository
from tokenmill.cli.main import main
from tokenmill.store.db import Database


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_tenants_prices_credits_usage_and_statements(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "tenants", "create", "acme", "--monthly-budget", "100", "--rpm", "60")
    listed = run(cli, "tenants", "list")
    assert "acme" in listed and "100.000000" in listed and "60" in listed
    run(cli, "tenants", "set", "acme", "--tpm", "1000", "--model-limits", '{"m": {"rpm": 5}}')
    assert "1000" in run(cli, "tenants", "list")
    run(cli, "tenants", "set", "acme", "--service-tier", "flex", "--service-tiers", "flex,default")
    assert run(cli, "tenants", "list").split()[-2:] == ["flex", "default,flex"]

    created = run(cli, "keys", "create", "--name", "bot", "--tenant", "acme", "--rpm", "10")
    key_id = created.split()[2]
    assert "Updated key" in run(cli, "keys", "set", key_id, "--concurrency", "2")

    run(cli, "prices", "set", "m", "--input", "0.5", "--output", "1.5", "--per-request", "0.01")
    assert "1.500000" in run(cli, "prices", "list")
    run(cli, "prices", "set", "m", "--tier", "priority", "--output", "4")
    assert "priority" in run(cli, "prices", "list", "--model", "m")

    assert "Balance of acme: 10.000000" in run(cli, "credits", "add", "acme", "10")
    twice = ("credits", "add", "acme", "5", "--idempotency-key", "wire-1")
    run(cli, *twice)
    assert "15.000000" in run(cli, *twice)  # added once
    assert "Balance: 15.000000" in run(cli, "credits", "show", "acme")

    db = Database(f"sqlite:///{tmp_path / 'tokenmill.db'}")
    tenant_id = next(line.split()[0] for line in listed.splitlines() if "acme" in line)
    now = datetime.now(UTC)
    UsageRepository(db).insert_many(
        [
            usage_event(
                "r1",
                tenant_id=tenant_id,
                model="m",
                cost_micros=2500,
                created_at=now,
                service_tier="flex",
            )
        ]
    )
    db.dispose()
    assert "0.002500" in run(cli, "usage", "show", "acme", "--group-by", "day")
    assert "flex" in run(cli, "usage", "show", "acme", "--group-by", "service_tier")
    levels = run(cli, "usage", "levels", "acme").splitlines()
    assert levels[0].split()[:3] == ["MODEL", "TIER", "REQUESTS"]
    assert levels[1].split()[:4] == ["m", "flex", "1", "1"]
    month = now.strftime("%Y-%m")
    statement = json.loads(run(cli, "usage", "statement", "acme", month))
    assert statement["total_micros"] == 2500
    assert run(cli, "usage", "statement", "acme", month, "--csv").splitlines()[-1] == (
        "total,,,,,0.002500"
    )
    assert "Balance: 14.997500" in run(cli, "credits", "show", "acme")
