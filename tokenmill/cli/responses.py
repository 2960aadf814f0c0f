"""``tokenmill responses``: a tenant's stored responses (the Responses API's), read from the
database: list them, show one with its output, its input items, delete one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.responses.repository import ResponseRepository

tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


def _repository_and_tenant(tenant: str) -> tuple[ResponseRepository, str]:
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.responses.repository import ResponseRepository

    db, clock = _open_db()
    return ResponseRepository(db), _tenant(db, clock, tenant).id


def _summary(item: dict[str, Any]) -> str:
    """One line for an output or input item."""
    from tokenmill.responses.items import item_text

    kind = item["type"]
    if kind == "message":
        cited = sum(len(p.get("annotations") or ()) for p in item.get("content") or ())
        text = " ".join(item_text(item).split())
        return f"{item['role']}: {text[:100]}" + (f"  [{cited} citations]" if cited else "")
    if kind == "function_call":
        return f"function_call {item['name']}({item['arguments']})"
    if kind == "function_call_output":
        return f"function_call_output {item['call_id']}: {item['output'][:80]}"
    if kind == "file_search_call":
        found = len(item.get("results") or ())
        return f"file_search {item['queries']} -> {found} results"
    return str(kind)


@click.group()
def responses() -> None:
    """Stored responses of the Responses API."""


@responses.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@tenant_option
@clear_errors
def list_responses(limit: int, tenant: str) -> None:
    """List the tenant's stored responses, newest first."""
    from datetime import UTC, datetime

    from tokenmill.cli.main import _when, format_table

    repository, tenant_id = _repository_and_tenant(tenant)
    rows = []
    for body in repository.list(tenant_id, limit=limit).data:
        usage = body.get("usage") or {}
        created = datetime.fromtimestamp(body["created_at"], UTC)
        rows.append(
            [
                body["id"],
                body["model"],
                body["status"],
                str(len(body["output"])),
                str(usage.get("total_tokens", "-")),
                _when(created),
            ]
        )
    headers = ["ID", "MODEL", "STATUS", "ITEMS", "TOKENS", "CREATED"]
    click.echo(format_table(headers, rows))


@responses.command("show")
@click.argument("response_id")
@click.option("--json", "as_json", is_flag=True, help="The whole response object.")
@tenant_option
@clear_errors
def show(response_id: str, as_json: bool, tenant: str) -> None:
    """Show a response: its status, usage and output items."""
    import orjson

    repository, tenant_id = _repository_and_tenant(tenant)
    body = repository.get(tenant_id, response_id).body
    if as_json:
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    usage = body.get("usage") or {}
    click.echo(f"{body['id']}  {body['model']}  {body['status']}")
    if body.get("previous_response_id"):
        click.echo(f"continues {body['previous_response_id']}")
    if body.get("error"):
        click.echo(f"error: {body['error']['code']}: {body['error']['message']}")
    click.echo(f"tokens: {usage.get('input_tokens', 0)} in, {usage.get('output_tokens', 0)} out")
    for item in body["output"]:
        click.echo(f"  {_summary(item)}")


@responses.command("items")
@click.argument("response_id")
@tenant_option
@clear_errors
def items(response_id: str, tenant: str) -> None:
    """List a response's input items, oldest first."""
    repository, tenant_id = _repository_and_tenant(tenant)
    page = repository.input_items(tenant_id, response_id, limit=100, order="asc")
    for item in page.data:
        click.echo(f"{item['id']}  {_summary(item)}")


@responses.command("delete")
@click.argument("response_id")
@tenant_option
@clear_errors
def delete(response_id: str, tenant: str) -> None:
    """Delete a stored response (it can no longer be continued)."""
    repository, tenant_id = _repository_and_tenant(tenant)
    repository.delete(tenant_id, response_id)
    click.echo(f"Deleted {response_id}.")
