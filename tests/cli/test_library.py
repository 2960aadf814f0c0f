from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.catalog.hubserver import serve_hub
from tokenmill.catalog.bundled import bundled_model
from tokenmill.cli.main import main

CHAT = "smollm2-135m-instruct"


def test_models_lists_the_three_bundled_models_with_their_aliases(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    for name in (CHAT, "gemma-3-270m", "all-minilm-l6-v2", "chat-small->@1"):
        assert name in result.output


def test_show_prints_the_card(cli: CliRunner) -> None:
    result = cli.invoke(main, ["models", "show", "gemma-3-270m"])
    assert result.exit_code == 0, result.output
    assert '"quantization": "Q4_K_M"' in result.output
    assert "Gemma Terms of Use" in result.output


def test_add_reads_the_file_and_alias_and_publish_work(cli: CliRunner, tmp_path: Path) -> None:
    copy = tmp_path / "mine.gguf"
    shutil.copyfile(bundled_model(CHAT).path(), copy)
    cli.invoke(main, ["tenants", "create", "acme"])
    added = cli.invoke(main, ["models", "add", str(copy), "--tenant", "acme"])
    assert added.exit_code == 0, added.output
    assert "Added mine" in added.output and '"architecture": "llama"' in added.output
    listed = cli.invoke(main, ["models", "list"]).output
    assert "mine" in listed
    moved = cli.invoke(main, ["models", "alias", "chat-small", "mine@1"])
    assert moved.output.strip() == "chat-small -> mine@1"
    assert "mine is published" in cli.invoke(main, ["models", "publish", "mine"]).output


def test_a_corrupt_file_is_one_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(bundled_model(CHAT).path().read_bytes()[:5_000_000])
    result = cli.invoke(main, ["models", "add", str(bad)])
    assert result.exit_code == 1
    assert "truncated" in result.output
    assert "broken" not in cli.invoke(main, ["models", "list"]).output


def test_pull_downloads_from_a_hub_and_adds_the_model(cli: CliRunner, tmp_path: Path) -> None:
    tree = tmp_path / "hub"
    repo = tree / "acme" / "tiny-chat"
    repo.mkdir(parents=True)
    shutil.copyfile(bundled_model(CHAT).path(), repo / "tiny-chat.Q4_1.gguf")
    (repo / "README.md").write_text("a tiny model")
    with serve_hub(tree) as (url, state):
        state.cut_after["tiny-chat.Q4_1.gguf"] = [20_000_000]  # the first attempt breaks off
        result = cli.invoke(main, ["models", "pull", "acme/tiny-chat", "--hub", url])
    assert result.exit_code == 0, result.output
    assert state.ranges_for("tiny-chat.Q4_1.gguf") == [None, "bytes=20000000-"]
    assert "Added tiny-chat.q4_1" in result.output
    assert "tiny-chat.q4_1" in cli.invoke(main, ["models", "list"]).output


def test_deployments_create_scale_and_stop(cli: CliRunner) -> None:
    created = cli.invoke(main, ["deployments", "create", "chat-small", "--max", "2"])
    assert created.exit_code == 1  # an alias is not a model: name the model
    created = cli.invoke(
        main, ["deployments", "create", CHAT, "--max", "2", "--setting", "context_tokens=512"]
    )
    assert created.exit_code == 0, created.output
    deployment_id = created.output.split()[1]
    assert "0-2" in cli.invoke(main, ["deployments"]).output
    scaled = cli.invoke(main, ["deployments", "scale", deployment_id, "--min", "1"])
    assert scaled.output.strip() == f"{deployment_id}: 1-2 replicas."
    assert cli.invoke(main, ["deployments", "stop", deployment_id]).exit_code == 0
    assert "stopped" in cli.invoke(main, ["deployments", "list"]).output
    bad = cli.invoke(main, ["deployments", "create", CHAT, "--setting", "colour=3"])
    assert bad.exit_code == 1 and "Unknown engine setting" in bad.output


@pytest.mark.parametrize("args", [["models", "show", "nope"], ["deployments", "stop", "dep_x"]])
def test_unknown_names_are_clear_errors(cli: CliRunner, args: list[str]) -> None:
    result = cli.invoke(main, args)
    assert result.exit_code == 1 and "Error:" in result.output
