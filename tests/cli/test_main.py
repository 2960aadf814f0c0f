from __future__ import annotations

from click.testing import CliRunner

from tokenmill.cli.main import format_table, main


def test_keys_create_list_revoke(cli: CliRunner) -> None:
    created = cli.invoke(main, ["keys", "create", "--name", "bot", "--tenant", "acme"])
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    key_id = created.output.split()[2]
    assert secret.startswith("tm-")

    listed = cli.invoke(main, ["keys", "list", "--tenant", "acme"])
    assert key_id in listed.output and "active" in listed.output
    assert secret not in listed.output

    revoked = cli.invoke(main, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0
    assert "revoked" in cli.invoke(main, ["keys", "list"]).output


def test_keys_for_another_tenant_are_not_listed_under_this_one(cli: CliRunner) -> None:
    cli.invoke(main, ["keys", "create", "--name", "a", "--tenant", "acme"])
    cli.invoke(main, ["keys", "create", "--name", "b", "--tenant", "globex"])
    listed = cli.invoke(main, ["keys", "list", "--tenant", "acme"]).output
    assert "globex" not in listed
    assert "acme" in listed


def test_revoking_an_unknown_key_fails(cli: CliRunner) -> None:
    result = cli.invoke(main, ["keys", "revoke", "key_nope"])
    assert result.exit_code != 0


def test_models_lists_the_bundled_model(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models"])
    assert result.exit_code == 0
    assert "smollm2-135m-instruct" in result.output


def test_format_table_aligns_columns() -> None:
    table = format_table(["A", "LONGER"], [["xxxx", "y"]])
    header, row = table.splitlines()
    assert header.index("LONGER") == row.index("y")
