"""The public API's operations for the OpenAPI document, one ``Op`` per (method, path).

Bodies of inference requests come from ``protocol.schemas`` (proven against the parsers);
bodies the family handlers check against a field set of their own (``CREATE_FIELDS`` and
the like) are built with ``closed`` over that very set. Paths under a prefix whose handler
dispatches sub-paths in code (files, batches, fine-tuning, responses, Apps) are listed here;
the fuzz test (tests/gateway/test_fuzz.py) fails on any of them the gateway does not route.
The vector stores' sub-paths come from their route tables instead (``openapi``).
"""

from __future__ import annotations

from tokenmill.batches.lines import ENDPOINTS
from tokenmill.batches.objects import COMPLETION_WINDOWS
from tokenmill.files.objects import PURPOSES, WRITTEN_PURPOSES
from tokenmill.gateway import apps, batches, fine_tuning, vector_stores
from tokenmill.gateway.openapi_ops import (
    EVENT_STREAM,
    JSON,
    METADATA,
    OBJECT,
    ORDERED_PAGE,
    PAGE,
    STRING,
    TEXT,
    Op,
    body,
    closed,
)
from tokenmill.knowledge.chunking import MAX_CHUNK_TOKENS, MIN_CHUNK_TOKENS
from tokenmill.knowledge.filters import MAX_ATTRIBUTES, MAX_KEY_CHARS, MAX_STRING_CHARS
from tokenmill.knowledge.search import FIELDS as SEARCH_FIELDS
from tokenmill.knowledge.search import MAX_QUERIES, MAX_RESULTS
from tokenmill.knowledge.stores import FILE_STATUSES, MAX_EXPIRES_DAYS, MAX_NAME_CHARS
from tokenmill.protocol.schemas import (
    BOOLEAN,
    CHAT_COMPLETION,
    COMPLETION,
    EMBEDDINGS,
    MODEL,
    Schema,
    integer,
    nullable,
    number,
)
from tokenmill.responses.request import FIELDS as RESPONSE_FIELDS
from tokenmill.responses.request import INCLUDABLE

SCALAR: Schema = {"type": ["string", "number", "boolean"]}
ATTRIBUTES: Schema = nullable(
    {
        "type": "object",
        "maxProperties": MAX_ATTRIBUTES,
        "propertyNames": {"minLength": 1, "maxLength": MAX_KEY_CHARS},
        "additionalProperties": {
            "anyOf": [
                {"type": "string", "maxLength": MAX_STRING_CHARS},
                {"type": "number", "minimum": -(2**53), "maximum": 2**53},
                {"type": "boolean"},
            ]
        },
    }
)
CHUNKING: Schema = nullable(
    {
        "oneOf": [
            closed({"type"}, ["type"], type={"const": "auto"}),
            closed(
                {"type", "static"},
                ["type", "static"],
                type={"const": "static"},
                static=closed(
                    {"max_chunk_size_tokens", "chunk_overlap_tokens"},
                    ["max_chunk_size_tokens", "chunk_overlap_tokens"],
                    max_chunk_size_tokens={
                        "type": "integer",
                        "minimum": MIN_CHUNK_TOKENS,
                        "maximum": MAX_CHUNK_TOKENS,
                    },
                    chunk_overlap_tokens={
                        "type": "integer",
                        "minimum": 0,
                        "description": "At most half of max_chunk_size_tokens.",
                    },
                ),
            ),
        ]
    }
)
EXPIRES_AFTER: Schema = nullable(
    closed(
        {"anchor", "days"},
        ["anchor", "days"],
        anchor={"const": "last_active_at"},
        days={"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_DAYS},
    )
)
FILE_IDS: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": vector_stores.MAX_BATCH_FILES,
    "items": TEXT,
}
NAME: Schema = nullable({"type": "string", "maxLength": MAX_NAME_CHARS})
FILTER_QUERY = {**ORDERED_PAGE, "filter": {"enum": list(FILE_STATUSES)}}

STORE = "vector_stores"
VECTOR_STORE_BODIES: dict[tuple[str, tuple[str, ...]], tuple[str, Schema | None]] = {
    ("POST", ()): (
        "Modify a vector store.",
        closed(
            vector_stores.MODIFY_FIELDS, name=NAME, metadata=METADATA, expires_after=EXPIRES_AFTER
        ),
    ),
    ("POST", ("files",)): (
        "Add a file to a vector store (indexed in the background).",
        closed(
            vector_stores.ADD_FILE_FIELDS,
            ["file_id"],
            file_id=TEXT,
            attributes=ATTRIBUTES,
            chunking_strategy=CHUNKING,
        ),
    ),
    ("POST", ("files", "*")): (
        "Update a vector store file's attributes.",
        closed({"attributes"}, ["attributes"], attributes=ATTRIBUTES),
    ),
    ("POST", ("file_batches",)): (
        "Add a batch of files to a vector store.",
        closed(
            vector_stores.BATCH_FIELDS,
            ["file_ids"],
            file_ids=FILE_IDS,
            attributes=ATTRIBUTES,
            chunking_strategy=CHUNKING,
        ),
    ),
    ("POST", ("file_batches", "*", "cancel")): ("Cancel a file batch.", None),
    ("POST", ("search",)): (
        "Search a vector store.",
        closed(
            SEARCH_FIELDS,
            ["query"],
            query={
                "anyOf": [
                    TEXT,
                    {"type": "array", "minItems": 1, "maxItems": MAX_QUERIES, "items": TEXT},
                ]
            },
            filters=nullable(OBJECT),
            max_num_results=integer(1, MAX_RESULTS),
            ranking_options=nullable(OBJECT),
            rewrite_query=BOOLEAN,
        ),
    ),
    ("GET", ()): ("Retrieve a vector store.", None),
    ("GET", ("files",)): ("List a vector store's files.", None),
    ("GET", ("files", "*")): ("Retrieve a vector store file.", None),
    ("GET", ("files", "*", "content")): ("A vector store file's indexed text.", None),
    ("GET", ("files", "*", "chunks")): ("A vector store file's chunks (tokenmill's own).", None),
    ("GET", ("file_batches", "*")): ("Retrieve a file batch.", None),
    ("GET", ("file_batches", "*", "files")): ("List a file batch's files.", None),
    ("DELETE", ()): ("Delete a vector store.", None),
    ("DELETE", ("files", "*")): ("Remove a file from a vector store.", None),
}
VECTOR_STORE_QUERIES = {
    ("GET", ("files",)): FILTER_QUERY,
    ("GET", ("file_batches", "*", "files")): FILTER_QUERY,
    ("GET", ("files", "*", "chunks")): {"limit": integer(1, 100), "after": {"type": "integer"}},
}


def vector_store_op(method: str, shape: tuple[str, ...]) -> Op:
    """The operation at ``/v1/vector_stores/{id}/<shape>`` (a route table entry)."""
    summary, schema = VECTOR_STORE_BODIES[(method, shape)]
    query = VECTOR_STORE_QUERIES.get((method, shape), {})
    return Op(STORE, summary, schema, query)


RESPONSE: Schema = closed(
    RESPONSE_FIELDS,
    ["model", "input"],
    model=MODEL,
    input={"anyOf": [{"type": "string"}, {"type": "array", "items": OBJECT}]},
    instructions=nullable(STRING),
    tools=nullable({"type": "array", "items": OBJECT}),
    tool_choice=nullable({"anyOf": [{"enum": ["none", "auto", "required"]}, OBJECT]}),
    parallel_tool_calls=BOOLEAN,
    max_tool_calls=integer(1),
    max_output_tokens=integer(1),
    temperature=number(0, 2),
    top_p=number(0, 1),
    text=nullable(OBJECT),
    store=BOOLEAN,
    previous_response_id=nullable(STRING),
    stream=BOOLEAN,
    include=nullable({"type": "array", "items": {"enum": sorted(INCLUDABLE)}}),
    metadata=METADATA,
    user=nullable(STRING),
    service_tier=nullable(STRING),
    truncation=nullable({"enum": ["auto", "disabled"]}),
    reasoning={"type": "null", "description": "Not supported yet."},
    background={"enum": [False, None], "description": "Background responses are not offered."},
    prompt=nullable(
        body(["id"], id=TEXT, version=nullable(STRING), variables=nullable(OBJECT)),
    ),
)
APP_CHAT: Schema = closed(
    apps.CHAT_FIELDS,
    ["message"],
    message=TEXT,
    variables=nullable(OBJECT),
    version=nullable({"type": ["string", "integer"]}),
    conversation_id=nullable(STRING),
)
CHAT_REPLY = (JSON, EVENT_STREAM)

OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/health"): Op("meta", "The gateway is up.", auth=False),
    ("GET", "/metrics"): Op("meta", "Prometheus metrics.", auth=False, media=("text/plain",)),
    ("GET", "/openapi.json"): Op("meta", "This document.", auth=False),
    # models
    ("GET", "/v1/models"): Op("models", "List the models this key may use."),
    ("GET", "/v1/models/{model}"): Op("models", "Retrieve a model with its card."),
    ("DELETE", "/v1/models/{model}"): Op("models", "Delete one of the tenant's fine-tunes."),
    # inference
    ("POST", "/v1/chat/completions"): Op(
        "chat", "Create a chat completion.", CHAT_COMPLETION, media=CHAT_REPLY
    ),
    ("POST", "/v1/completions"): Op(
        "completions", "Create a text completion.", COMPLETION, media=CHAT_REPLY
    ),
    ("POST", "/v1/embeddings"): Op("embeddings", "Create embeddings.", EMBEDDINGS),
    # files
    ("GET", "/v1/files"): Op(
        "files",
        "List the tenant's files.",
        query={
            "purpose": {"enum": list(PURPOSES + WRITTEN_PURPOSES)},
            "limit": integer(1, 10000),
            "order": {"enum": ["asc", "desc"]},
            "after": STRING,
        },
    ),
    ("POST", "/v1/files"): Op(
        "files",
        "Upload a file.",
        body(
            ["file", "purpose"],
            file={"type": "string", "format": "binary"},
            purpose={"enum": list(PURPOSES)},
        ),
        form=True,
    ),
    ("GET", "/v1/files/{file_id}"): Op("files", "Retrieve a file."),
    ("GET", "/v1/files/{file_id}/content"): Op(
        "files", "A file's bytes.", media=("application/octet-stream",)
    ),
    ("DELETE", "/v1/files/{file_id}"): Op("files", "Delete a file."),
    # vector stores (the collection; what is under one store comes from its route tables)
    ("GET", "/v1/vector_stores"): Op(STORE, "List vector stores.", query=ORDERED_PAGE),
    ("POST", "/v1/vector_stores"): Op(
        STORE,
        "Create a vector store.",
        closed(
            vector_stores.CREATE_FIELDS,
            name=NAME,
            metadata=METADATA,
            expires_after=EXPIRES_AFTER,
            file_ids=nullable(FILE_IDS),
            chunking_strategy=CHUNKING,
            description=nullable(STRING),
        ),
    ),
    # batches
    ("GET", "/v1/batches"): Op("batches", "List batches.", query=PAGE),
    ("POST", "/v1/batches"): Op(
        "batches",
        "Create a batch.",
        closed(
            batches.CREATE_FIELDS,
            ["input_file_id", "endpoint", "completion_window"],
            input_file_id=TEXT,
            endpoint={"enum": list(ENDPOINTS)},
            completion_window={"enum": list(COMPLETION_WINDOWS)},
            metadata=METADATA,
        ),
    ),
    ("GET", "/v1/batches/{batch_id}"): Op("batches", "Retrieve a batch."),
    ("POST", "/v1/batches/{batch_id}/cancel"): Op("batches", "Cancel a batch."),
    # fine-tuning
    ("GET", "/v1/fine_tuning/jobs"): Op("fine-tuning", "List fine-tuning jobs.", query=PAGE),
    ("POST", "/v1/fine_tuning/jobs"): Op(
        "fine-tuning",
        "Create a fine-tuning job.",
        closed(
            fine_tuning.CREATE_FIELDS,
            ["model", "training_file"],
            model=MODEL,
            training_file=TEXT,
            validation_file=nullable(STRING),
            suffix=nullable({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
            seed=integer(0, 2**31 - 1),
            method=nullable(OBJECT),
            hyperparameters=nullable(OBJECT),
            metadata=METADATA,
            integrations={"type": ["array", "null"], "maxItems": 0},
        ),
    ),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): Op("fine-tuning", "Retrieve a job."),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): Op(
        "fine-tuning", "A job's events.", query=PAGE
    ),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"): Op(
        "fine-tuning", "A job's checkpoints.", query=PAGE
    ),
    **{
        ("POST", f"/v1/fine_tuning/jobs/{{job_id}}/{action}"): Op(
            "fine-tuning", f"{action.capitalize()} a job."
        )
        for action in fine_tuning.ACTIONS
    },
    # responses
    ("GET", "/v1/responses"): Op(
        "responses", "List stored responses (tokenmill's own).", query=PAGE
    ),
    ("POST", "/v1/responses"): Op("responses", "Create a response.", RESPONSE, media=CHAT_REPLY),
    ("GET", "/v1/responses/{response_id}"): Op("responses", "Retrieve a response."),
    ("DELETE", "/v1/responses/{response_id}"): Op("responses", "Delete a response."),
    ("GET", "/v1/responses/{response_id}/input_items"): Op(
        "responses", "A response's input items.", query={**PAGE, "order": {"enum": ["asc", "desc"]}}
    ),
    # Apps
    ("GET", "/v1/apps"): Op("apps", "List the tenant's Apps."),
    ("POST", "/v1/apps"): Op(
        "apps", "Create an App.", closed({"name", "config"}, name=STRING, config=OBJECT)
    ),
    ("GET", "/v1/apps/{app_id}"): Op("apps", "Retrieve an App with its configuration."),
    ("POST", "/v1/apps/{app_id}"): Op(
        "apps",
        "Rename, embed or publish an App.",
        body(name=STRING, embed=BOOLEAN, published_version=nullable(STRING)),
    ),
    ("GET", "/v1/apps/{app_id}/versions"): Op("apps", "List an App's versions."),
    ("POST", "/v1/apps/{app_id}/versions"): Op(
        "apps",
        "Save a new version of an App.",
        closed({"config", "note"}, config=OBJECT, note=nullable(STRING)),
    ),
    ("GET", "/v1/apps/{app_id}/versions/{version}"): Op("apps", "Retrieve an App version."),
    ("GET", "/v1/apps/{app_id}/diff"): Op(
        "apps", "What changed between two versions.", query={"from": STRING, "to": STRING}
    ),
    ("POST", "/v1/apps/{app_id}/keys"): Op(
        "apps", "Issue a key that may call only this App.", body(name=STRING)
    ),
    ("POST", "/v1/apps/{app_id}/chat"): Op("apps", "One turn of chat with an App.", APP_CHAT),
    ("GET", "/apps/{app_id}"): Op(
        "apps", "An App's public chat page.", auth=False, media=("text/html",)
    ),
    ("POST", "/apps/{app_id}/chat"): Op(
        "apps", "One turn of chat on an App's public page.", APP_CHAT, auth=False
    ),
}
