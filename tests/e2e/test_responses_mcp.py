"""MCP tools through a live ``tokenmill serve`` and the bundled model: a tenant's registered
server (the test MCP server) called by the official ``openai`` client, with and without
approval, and by an ``openai-agents`` agent's hosted MCP tool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_files import _tenant_key
from tests.e2e.test_responses import MODEL, _unknown_fields
from tests.plugins.mcp_server import running

GEO: Any = {"type": "mcp", "server_label": "geo", "allowed_tools": ["capital"]}
QUESTION = "What is the capital of Peru?"
FORCED: Any = {"type": "mcp", "server_label": "geo", "name": "capital"}


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


def _tenant_with_server(platform: Platform, name: str, url: str) -> str:
    """A new tenant's inference key; its server ``geo`` registered by the platform admin."""
    key = _tenant_key(platform, name, credit_micros=10_000_000)
    with platform.http() as http:
        tenants = http.get("/admin/v1/tenants").json()["data"]
        tenant = next(t for t in tenants if t["name"] == name)
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/mcp_servers",
            json={
                "label": "geo",
                "url": url,
                "description": "Capitals of countries",
                "require_approval": "never",
            },  # requests decide
        )
        assert made.status_code == 200, made.text
    return key


def test_the_openai_client_calls_a_registered_server_with_and_without_approval(
    platform: Platform, server_url: str
) -> None:
    client = platform.client(_tenant_with_server(platform, "mcp-alpha", server_url))
    direct = client.responses.create(
        model=MODEL, input=QUESTION, tools=[{**GEO, "require_approval": "never"}],
        tool_choice=FORCED, max_output_tokens=48, temperature=0,
    )  # fmt: skip
    assert _unknown_fields(direct) == []
    kinds = [item.type for item in direct.output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"], kinds
    listing, call = direct.output[0], direct.output[1]
    assert [tool.name for tool in listing.tools] == ["capital"]  # type: ignore[union-attr]
    assert call.error is None and call.output  # type: ignore[union-attr]

    waiting = client.responses.create(
        model=MODEL, input=QUESTION, tools=[GEO], tool_choice=FORCED,
        max_output_tokens=48, temperature=0,
    )  # fmt: skip
    request = waiting.output[-1]
    assert request.type == "mcp_approval_request"
    approved = client.responses.create(
        model=MODEL, previous_response_id=waiting.id, tools=[GEO], max_output_tokens=48,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id,
                "approve": True}],
    )  # fmt: skip
    assert _unknown_fields(approved) == []
    ran = approved.output[0]
    assert ran.type == "mcp_call" and ran.approval_request_id == request.id
    assert ran.output

    other = platform.client(_tenant_key(platform, "mcp-beta", credit_micros=1_000_000))
    with pytest.raises(openai.BadRequestError, match="no MCP server labelled 'geo'"):
        other.responses.create(model=MODEL, input="hi", tools=[GEO])


def test_an_agent_s_hosted_mcp_tool_runs_to_completion(platform: Platform, server_url: str) -> None:
    from agents import (
        Agent,
        HostedMCPTool,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    key = _tenant_with_server(platform, "mcp-agent", server_url)
    model = OpenAIResponsesModel(
        model=MODEL,
        openai_client=openai.AsyncOpenAI(base_url=f"{platform.base_url}/v1", api_key=key),
    )
    tool = HostedMCPTool(tool_config={**GEO, "require_approval": "never"})
    agent = Agent(
        name="geographer", instructions="Answer in one short sentence.", model=model,
        tools=[tool], model_settings=ModelSettings(temperature=0, max_tokens=128,
                                                   tool_choice="required",
                                                   parallel_tool_calls=False),
    )  # fmt: skip
    result = Runner.run_sync(agent, "What is the capital of Japan?", max_turns=3)
    kinds = [item.type for item in result.new_items]
    assert "mcp_list_tools_item" in kinds and "tool_call_item" in kinds, kinds
    assert isinstance(result.final_output, str) and result.final_output
