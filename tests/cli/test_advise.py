"""``tokenmill advise`` against a fresh data directory: a tenant's own usage records in, the
months' bills and a recommendation out, as a table or as JSON; the progress on stderr."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner, Result

from tests.advice.conftest import MODEL, START, every, requests, write
from tokenmill.cli.main import main
from tokenmill.settings import Settings
from tokenmill.store.db import Database

WINDOW = ["--since", "2026-01-31T23:00:00", "--until", "2026-02-01T01:00:00"]


@pytest.fixture
def acme_used(cli: CliRunner, acme: str) -> str:
    """Acme's id; acme sent 8 requests to the CPU model over two months, at a dear hour."""
    priced = cli.invoke(main, ["prices", "set", MODEL, "--accelerator-hour", "1000"])
    assert priced.exit_code == 0, priced.output
    db = Database.from_settings(Settings())
    try:
        write(db, requests(acme, every(START, 2, 4), cost_micros=2_500))
        write(db, requests(acme, every(START, 1, 1), model="llama-8b", name="o"))
    finally:
        db.dispose()
    return acme


def advise(cli: CliRunner, *args: str) -> Result:
    result = cli.invoke(main, ["advise", *args])
    assert result.exit_code == 0, result.output
    return result


def test_the_table_shows_each_month_and_the_recommendation(cli: CliRunner, acme_used: str) -> None:
    result = advise(cli, "acme", "--model", MODEL, *WINDOW)

    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{MODEL} for {acme_used}, 0.083 days from 2026-01-31T23:00")
    assert "cost model cpu, 1000.000000 per cpu hour" in lines[1]
    months = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("2026-")}
    assert months == {
        "2026-01": ["4", "0.010000", "1000.000000", "1000.000000"],
        "2026-02": ["4", "0.010000", "1000.000000", "1000.000000"],
    }
    assert "recommendation: serverless" in lines
    assert "Serverless is cheaper" in result.stdout
    assert MODEL in result.stderr  # the progress bar's label


def test_json_holds_every_model_advised_and_says_which_were_skipped(
    cli: CliRunner, acme_used: str
) -> None:
    result = advise(cli, "acme", *WINDOW, "--json")

    [advice] = orjson.loads(result.stdout)
    assert (advice["tenant_id"], advice["model"]) == (acme_used, MODEL)
    assert advice["serverless_micros"] == 8 * 2_500
    assert [m["month"] for m in advice["months"]] == ["2026-01", "2026-02"]
    assert advice["recommendation"] == "serverless"
    assert "llama-8b: skipped: No calibrated cost model" in result.stderr


def test_an_unknown_tenant_or_an_idle_one_is_a_clear_error(cli: CliRunner, acme: str) -> None:
    unknown = cli.invoke(main, ["advise", "nobody", *WINDOW])
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "Error: No tenant named 'nobody'."

    idle = cli.invoke(main, ["advise", "other", *WINDOW])
    assert idle.exit_code == 1
    assert "other used no model between 2026-01-31 23:00:00+00:00" in idle.output

    priceless = cli.invoke(main, ["advise", "acme", "--model", MODEL, *WINDOW])
    assert priceless.exit_code == 1
    assert "No accelerator-hour price" in priceless.output
