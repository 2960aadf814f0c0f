"""``tokenmill responses`` against a fresh data directory, over responses stored as the gateway
stores them (``ResponseRepository.save``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tokenmill.cli.main import main
from tokenmill.responses.items import message_item
from tokenmill.responses.objects import new_response
from tokenmill.responses.repository import ResponseRepository
from tokenmill.responses.request import parse_response_request
from tokenmill.settings import Settings
from tokenmill.store.db import Database

MODEL = "smollm2-135m-instruct"
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
RESULTS = [
    {"file_id": "file-1", "filename": "handbook.txt", "score": 0.9, "text": "Sixteen weeks.",
     "attributes": {}},
    {"file_id": "file-2", "filename": "faq.txt", "score": 0.4, "text": "Ask HR.",
     "attributes": {}},
]  # fmt: skip


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def save(
    tenant_id: str, response_id: str, minutes: int, input: Any, output: list[Any], **fields: Any
) -> dict[str, Any]:
    """Stores a response as the gateway does once its loop is done."""
    request = parse_response_request({"model": MODEL, "input": input})
    created = T0 + timedelta(minutes=minutes)
    body = new_response(response_id, request, MODEL, int(created.timestamp()), "default")
    body.update(status="completed", output=output, **fields)
    db = Database.from_settings(Settings())
    try:
        ResponseRepository(db).save(tenant_id, "key_cli", body, request.items, frozenset(), created)
    finally:
        db.dispose()
    return body


def answer(text: str, citations: int = 0) -> dict[str, Any]:
    item = message_item("assistant", text)
    item["content"][0]["annotations"] = [
        {"type": "file_citation", "file_id": "file-1", "filename": "handbook.txt", "index": 0}
    ] * citations
    return item


def test_list_show_items_and_delete(cli: CliRunner, acme: str) -> None:
    save(acme, "resp_old", 0, "Name a colour.", [answer("Blue.")], usage=usage(10, 2))
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
            "arguments": '{"city": "Paris"}', "status": "completed"}  # fmt: skip
    save(acme, "resp_mid", 1, "Weather in Paris?", [call], usage=usage(20, 9),
         previous_response_id="resp_old")  # fmt: skip
    search = {"type": "file_search_call", "id": "fs_1", "status": "completed",
              "queries": ["parental leave"], "results": RESULTS}  # fmt: skip
    newest = save(
        acme, "resp_new", 2, [{"role": "user", "content": "How long is leave?"},
                              {"type": "function_call_output", "call_id": "call_1",
                               "output": '{"celsius": 21}'}],
        [search, answer("Sixteen weeks [1].", citations=1)], usage=usage(52, 11),
    )  # fmt: skip

    listed = cli.invoke(main, ["responses", "list", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "MODEL", "STATUS", "ITEMS", "TOKENS", "CREATED"]
    assert [row.split()[:5] for row in rows] == [
        ["resp_new", MODEL, "completed", "2", "63"],
        ["resp_mid", MODEL, "completed", "1", "29"],
        ["resp_old", MODEL, "completed", "1", "12"],
    ]
    assert rows[0].endswith("2026-03-01 09:32")
    one = cli.invoke(main, ["responses", "list", "--limit", "1", "--tenant", "acme"]).output
    assert "resp_new" in one and "resp_mid" not in one
    assert "resp_" not in cli.invoke(main, ["responses", "list", "--tenant", "other"]).output

    shown = cli.invoke(main, ["responses", "show", "resp_new", "--tenant", "acme"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"resp_new  {MODEL}  completed",
        "tokens: 52 in, 11 out",
        "  file_search ['parental leave'] -> 2 results",
        "  assistant: Sixteen weeks [1].  [1 citations]",
    ]
    mid = cli.invoke(main, ["responses", "show", "resp_mid", "--tenant", "acme"]).output
    assert mid.splitlines() == [
        f"resp_mid  {MODEL}  completed",
        "continues resp_old",
        "tokens: 20 in, 9 out",
        '  function_call get_weather({"city": "Paris"})',
    ]
    whole = cli.invoke(main, ["responses", "show", "resp_new", "--json", "--tenant", "acme"])
    assert whole.exit_code == 0 and orjson.loads(whole.output) == newest

    items = cli.invoke(main, ["responses", "items", "resp_new", "--tenant", "acme"])
    assert items.exit_code == 0, items.output
    first, second = items.output.splitlines()
    assert first.startswith("msg_") and first.endswith("  user: How long is leave?")
    assert second.startswith("fco_")
    assert second.endswith('  function_call_output call_1: {"celsius": 21}')

    deleted = cli.invoke(main, ["responses", "delete", "resp_old", "--tenant", "acme"])
    assert deleted.exit_code == 0 and deleted.output.strip() == "Deleted resp_old."
    listed = cli.invoke(main, ["responses", "list", "--tenant", "acme"]).output
    assert "resp_old" not in listed and "resp_mid" in listed


def test_a_failed_response_shows_its_error(cli: CliRunner, acme: str) -> None:
    error = {"code": "engine_overloaded", "message": "The engine is busy."}
    save(acme, "resp_failed", 0, "hi", [], usage=usage(12, 0), error=error)
    shown = cli.invoke(main, ["responses", "show", "resp_failed", "--tenant", "acme"]).output
    assert "error: engine_overloaded: The engine is busy." in shown.splitlines()


@pytest.mark.parametrize("command", ["show", "items", "delete"])
def test_an_unknown_id_or_tenant_is_one_clear_error(
    cli: CliRunner, acme: str, command: str
) -> None:
    save(acme, "resp_acme", 0, "hi", [answer("Hello.")], usage=usage(3, 2))
    missing = cli.invoke(main, ["responses", command, "resp_nope", "--tenant", "acme"])
    assert missing.exit_code == 1
    assert "No response found with id 'resp_nope'." in missing.output
    theirs = cli.invoke(main, ["responses", command, "resp_acme", "--tenant", "other"])
    assert theirs.exit_code == 1
    assert "No response found with id 'resp_acme'." in theirs.output
    ghost = cli.invoke(main, ["responses", command, "resp_acme", "--tenant", "ghost"])
    assert ghost.exit_code == 1 and "No tenant named 'ghost'." in ghost.output
    assert "Traceback" not in missing.output + theirs.output + ghost.output
    still = cli.invoke(main, ["responses", "show", "resp_acme", "--tenant", "acme"])
    assert still.exit_code == 0 and "assistant: Hello." in still.output


def test_list_of_a_tenant_that_does_not_exist(cli: CliRunner, acme: str) -> None:
    listed = cli.invoke(main, ["responses", "list", "--tenant", "ghost"])
    assert listed.exit_code == 1 and "No tenant named 'ghost'." in listed.output
