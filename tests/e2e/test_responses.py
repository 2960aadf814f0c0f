"""The Responses API through a live ``tokenmill serve``: the official openai client (create,
stream, a function tool and its follow-up, file search with citations, stored conversations),
LangChain's ``ChatOpenAI(use_responses_api=True)`` and an ``openai-agents`` agent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.e2e.conftest import Platform
from tests.e2e.test_files import _tenant_key
from tests.e2e.test_vector_stores import HANDBOOK
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.store.app_tables import StoredResponse

MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 30}},
    "required": ["city"],
    "additionalProperties": False,
}
GET_WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": WEATHER,
    "strict": True,
}


def _usage(platform: Platform, tenant_id: str, endpoint: str, count: int) -> list[UsageEvent]:
    """The tenant's usage events of ``endpoint``, once ``count`` of them are written."""
    deadline = time.monotonic() + 10
    while True:
        events = [e for e in UsageRepository(platform.db).list(tenant_id) if e.endpoint == endpoint]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_a_conversation_is_stored_continued_and_private(platform: Platform) -> None:
    key = _tenant_key(platform, "responses-alpha", credit_micros=10_000_000)
    client = platform.client(key)
    first = client.responses.create(
        model=MODEL, input="Name a colour.", instructions="Answer in one word.",
        max_output_tokens=8, temperature=0,
    )  # fmt: skip
    assert first.object == "response" and first.id.startswith("resp_")
    assert _unknown_fields(first) == []
    assert first.status in ("completed", "incomplete") and first.output_text
    assert first.usage is not None and first.usage.output_tokens <= 8

    second = client.responses.create(
        model=MODEL, input="And another one?", previous_response_id=first.id,
        max_output_tokens=8, temperature=0,
    )  # fmt: skip
    assert second.previous_response_id == first.id and second.output_text
    assert second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # it saw the conversation

    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert client.responses.retrieve(first.id).output_text == first.output_text

    other = platform.client(_tenant_key(platform, "responses-beta"))
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=MODEL, input="hi", previous_response_id=first.id)

    events = _usage(platform, _tenant_of_response(platform, first.id), "responses", 2)
    assert len(events) == 2 and all(e.status == "ok" and e.cost_micros > 0 for e in events)
    assert sum(e.completion_tokens for e in events) == (
        first.usage.output_tokens + second.usage.output_tokens
    )  # each model call is billed, and the response's usage is their sum

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def _unknown_fields(model: Any, where: str = "") -> list[str]:
    """Fields of a parsed ``openai`` object (recursively) that OpenAI's types do not have: the
    SDK's types are generated from OpenAI's published API, so none means the same shape."""
    if isinstance(model, BaseModel):
        found = [f"{where}.{name}" for name in model.model_extra or {}]
        for name in type(model).model_fields:
            found += _unknown_fields(getattr(model, name), f"{where}.{name}")
        return found
    if isinstance(model, list):
        return [f for i, item in enumerate(model) for f in _unknown_fields(item, f"{where}[{i}]")]
    return []


def _tenant_of_response(platform: Platform, response_id: str) -> str:
    with platform.db.session() as session:
        row = session.get(StoredResponse, response_id)
        assert row is not None
        return row.tenant_id


def test_a_streamed_function_call_and_its_follow_up(platform: Platform) -> None:
    client = platform.client(_tenant_key(platform, "responses-tools", credit_micros=10_000_000))
    kinds: list[str] = []
    with client.responses.stream(
        model=MODEL, input="What is the weather in Paris?", tools=[GET_WEATHER],
        tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
        max_output_tokens=48,
        temperature=0,
    ) as stream:  # fmt: skip
        for event in stream:
            kinds.append(event.type)
            assert _unknown_fields(event, event.type) == []
        response = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)

    follow_up = client.responses.create(
        model=MODEL, previous_response_id=response.id, tools=[GET_WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": '{"temperature_celsius": 21}'}],
        max_output_tokens=24, temperature=0,
    )  # fmt: skip
    assert follow_up.status in ("completed", "incomplete") and follow_up.output_text


def test_file_search_answers_with_citations(platform: Platform, tmp_path: Path) -> None:
    key = _tenant_key(platform, "responses-search", credit_micros=10_000_000)
    client = platform.client(key)
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)
    store = client.vector_stores.create(name="handbook")
    with path.open("rb") as handle:
        entry = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=handle, poll_interval_ms=200
        )
    assert entry.status == "completed", entry.last_error

    response = client.responses.create(
        model=MODEL, input="How long is parental leave?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 2}],
        tool_choice={"type": "file_search"}, include=["file_search_call.results"],
        max_output_tokens=64, temperature=0,
    )  # fmt: skip
    assert _unknown_fields(response) == []
    [search] = [item for item in response.output if item.type == "file_search_call"][:1]
    assert search.status == "completed" and search.queries
    assert search.results and search.results[0].filename == "handbook.md"
    message = [item for item in response.output if item.type == "message"][-1]
    annotations = message.content[0].annotations  # type: ignore[union-attr]
    assert annotations and all(a.type == "file_citation" for a in annotations)
    assert {a.file_id for a in annotations if a.type == "file_citation"} == {entry.id}

    hidden = client.responses.retrieve(response.id)
    assert next(i for i in hidden.output if i.type == "file_search_call").results is None


def test_langchain_runs_against_it(platform: Platform) -> None:
    key = _tenant_key(platform, "responses-langchain", credit_micros=10_000_000)
    chat = ChatOpenAI(
        model=MODEL, base_url=f"{platform.base_url}/v1", api_key=key,  # type: ignore[arg-type]
        use_responses_api=True, max_tokens=16, temperature=0, max_retries=0,
    )  # fmt: skip
    reply = chat.invoke("Say hello.")
    assert reply.text and reply.response_metadata["id"].startswith("resp_")


def _agent_runs(platform: Platform, key: str, store_id: str) -> None:
    """An ``openai-agents`` agent with a function tool and a file search tool, to the end."""
    from agents import (
        Agent,
        FileSearchTool,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny in {city}."

    model = OpenAIResponsesModel(
        model=MODEL,
        openai_client=openai.AsyncOpenAI(base_url=f"{platform.base_url}/v1", api_key=key),
    )
    settings = ModelSettings(
        temperature=0, max_tokens=64, tool_choice="get_weather", parallel_tool_calls=False
    )
    agent = Agent(
        name="assistant", instructions="Answer in one short sentence.", model=model,
        tools=[get_weather, FileSearchTool(vector_store_ids=[store_id], max_num_results=2)],
        model_settings=settings,
    )  # fmt: skip
    result = Runner.run_sync(agent, "What is the weather in Paris?", max_turns=4)
    assert asked and isinstance(result.final_output, str) and result.final_output
