"""The admin API's operations for the OpenAPI document, keyed as ``admin.ROUTES`` keys them:
(method, path pattern with ``*`` for an id). ``openapi`` lays every route of that table out
with the entry here, and refuses to build when one has none (or one here has no route).

Admin bodies are checked in the handlers and the repositories they call; the schemas name
the fields those read, with the same limits.
"""

from __future__ import annotations

from tokenmill.billing.pricebook import PRICE_FIELDS
from tokenmill.billing.statements import GROUPS
from tokenmill.control.keys import KEY_TERMS, Role
from tokenmill.control.tenants import TENANT_TERMS
from tokenmill.gateway.openapi_ops import OBJECT, STRING, TEXT, Op, body
from tokenmill.plugins.servers import FIELDS as MCP_FIELDS
from tokenmill.protocol.schemas import BOOLEAN, Schema, integer, nullable
from tokenmill.protocol.tiers import TIER_NAMES, TIER_TERMS

TIME: Schema = {"type": "string", "format": "date-time"}
WINDOW = {"since": TIME, "until": TIME}
TERMS: dict[str, Schema] = {
    **{name: integer(0) for name in TENANT_TERMS},
    "service_tier": nullable({"enum": list(TIER_NAMES)}),
    "service_tiers": nullable({"type": "array", "minItems": 1, "items": {"enum": TIER_NAMES}}),
}
TENANT_TERMS_BODY = body(**TERMS, model_limits=nullable(OBJECT), share_weight=integer(1, 1000))
KEY_BODY = body(
    ["name"],
    name=STRING,
    role={"enum": [role.value for role in Role]},
    allowed_models=nullable({"type": "array", "items": STRING}),
    expires_at=nullable(TIME),
    **{name: TERMS[name] for name in (*KEY_TERMS, *TIER_TERMS)},
)
MODEL_FILE = body(["path"], path=TEXT, id=nullable(STRING), version=nullable(STRING))
DEPLOYMENT_SCALING = {
    "min_replicas": integer(0),
    "max_replicas": integer(1),
    "idle_seconds": integer(1),
    "settings": nullable(OBJECT),
    "scaling": nullable(OBJECT),
    "constraints": nullable(OBJECT),
}
MCP_SERVER: dict[str, Schema] = {
    "label": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    "description": nullable({"type": "string", "maxLength": 1000}),
    "url": nullable({"type": "string", "maxLength": 2000}),
    "command": nullable({"type": "array", "items": STRING}),
    "headers": nullable(OBJECT),
    "allowed_tools": nullable({"type": "array", "items": STRING}),
    "require_approval": nullable({"anyOf": [{"enum": ["always", "never"]}, OBJECT]}),
}
if set(MCP_SERVER) != MCP_FIELDS:  # the plugin service's own field set
    raise ValueError(f"MCP server schema fields {sorted(MCP_SERVER)} are not {sorted(MCP_FIELDS)}")

TENANTS, KEYS, LIBRARY, FLEET = "admin: tenants", "admin: keys", "admin: library", "admin: fleet"
BILLING, CONSOLE, MCP, ADVICE = "admin: billing", "admin: console", "admin: mcp", "admin: advice"
DATASETS, EVALS, AUDIT = "admin: datasets", "admin: evals", "admin: audit"
DATASET_VERSION = ("datasets", "*", "versions", "*")
SERVERS = ("tenants", "*", "mcp_servers")

OPERATIONS: dict[tuple[str, tuple[str, ...]], Op] = {
    ("GET", ("tenants",)): Op(TENANTS, "List tenants (a tenant admin sees its own)."),
    ("POST", ("tenants",)): Op(
        TENANTS, "Create a tenant.", body(["name"], name=STRING, **TENANT_TERMS_BODY["properties"])
    ),
    ("GET", ("tenants", "*")): Op(TENANTS, "Retrieve a tenant."),
    ("PATCH", ("tenants", "*")): Op(TENANTS, "Change a tenant's limits.", TENANT_TERMS_BODY),
    ("GET", ("tenants", "*", "keys")): Op(KEYS, "List a tenant's API keys."),
    ("POST", ("tenants", "*", "keys")): Op(KEYS, "Create an API key.", KEY_BODY),
    ("GET", ("keys", "*")): Op(KEYS, "Retrieve an API key."),
    ("PATCH", ("keys", "*")): Op(
        KEYS,
        "Change an API key's limits.",
        body(**{name: TERMS[name] for name in (*KEY_TERMS, *TIER_TERMS)}),
    ),
    ("POST", ("keys", "*", "revoke")): Op(KEYS, "Revoke an API key."),
    ("GET", ("prices",)): Op(BILLING, "List price book entries.", query={"model": STRING}),
    ("POST", ("prices",)): Op(
        BILLING,
        "Add a price (micro-units per million tokens, per request, per hour).",
        body(
            ["model"],
            model=STRING,
            effective_at=nullable(TIME),
            service_tier=nullable({"enum": list(TIER_NAMES)}),
            **{name: {"type": "integer", "minimum": 0} for name in PRICE_FIELDS},
        ),
    ),
    ("GET", ("tenants", "*", "credits")): Op(
        BILLING, "A tenant's balance and ledger entries.", query={"limit": integer(1, 1000)}
    ),
    ("POST", ("tenants", "*", "credits")): Op(
        BILLING,
        "Top up or adjust a tenant's credit.",
        body(
            ["amount_micros"],
            amount_micros={"type": "integer"},
            kind={"enum": ["topup", "adjustment"]},
            note=nullable(STRING),
            idempotency_key=nullable(STRING),
        ),
    ),
    ("GET", ("tenants", "*", "usage")): Op(
        BILLING, "A tenant's usage, grouped.", query={"group_by": {"enum": list(GROUPS)}, **WINDOW}
    ),
    ("GET", ("tenants", "*", "statements", "*")): Op(
        BILLING,
        "A tenant's monthly statement (YYYY-MM, or YYYY-MM.csv).",
        media=("application/json", "text/csv"),
    ),
    ("GET", ("tenants", "*", "service_levels")): Op(
        BILLING, "A tenant's latency against its targets.", query=WINDOW
    ),
    ("GET", ("service_levels",)): Op(
        BILLING, "Latency against targets, every tenant.", query=WINDOW
    ),
    # the model library and the fleet
    ("GET", ("models",)): Op(LIBRARY, "List the library's models."),
    ("POST", ("models",)): Op(LIBRARY, "Add a model from a file on the server.", MODEL_FILE),
    ("GET", ("models", "*")): Op(LIBRARY, "Retrieve a model with its card."),
    ("PATCH", ("models", "*")): Op(
        LIBRARY,
        "Publish a model or change its card.",
        body(published=BOOLEAN, card=nullable(OBJECT), default_version=nullable(STRING)),
    ),
    ("POST", ("models", "*", "versions")): Op(LIBRARY, "Add a version of a model.", MODEL_FILE),
    ("POST", ("models", "*", "merge")): Op(LIBRARY, "Merge a fine-tune into a standalone model."),
    ("GET", ("aliases",)): Op(LIBRARY, "List aliases."),
    ("POST", ("aliases",)): Op(
        LIBRARY,
        "Point an alias at a model version.",
        body(["name", "model", "version"], name=STRING, model=STRING, version=STRING),
    ),
    ("GET", ("deployments",)): Op(FLEET, "List deployments."),
    ("POST", ("deployments",)): Op(
        FLEET,
        "Create a deployment.",
        body(
            ["model"],
            model=STRING,
            version=nullable(STRING),
            mode={"enum": ["serverless", "dedicated"]},
            tenant_id=nullable(STRING),
            engine=nullable(STRING),
            **DEPLOYMENT_SCALING,
        ),
    ),
    ("GET", ("deployments", "*")): Op(FLEET, "Retrieve a deployment with its replicas."),
    ("PATCH", ("deployments", "*")): Op(
        FLEET,
        "Change a deployment's scaling or status.",
        body(status={"enum": ["active", "stopped"]}, **DEPLOYMENT_SCALING),
    ),
    ("POST", ("deployments", "*", "stop")): Op(FLEET, "Stop a deployment."),
    # the console's views
    ("GET", ("me",)): Op(CONSOLE, "Who this key is."),
    ("GET", ("overview",)): Op(
        CONSOLE,
        "Live traffic.",
        query={"tenant_id": STRING, "window_seconds": integer(1, 86400)},
    ),
    ("GET", ("requests", "*")): Op(CONSOLE, "One request's usage."),
    # tenants' MCP servers
    ("GET", SERVERS): Op(MCP, "List a tenant's MCP servers."),
    ("POST", SERVERS): Op(MCP, "Register an MCP server.", body(["label"], **MCP_SERVER)),
    ("GET", (*SERVERS, "*")): Op(MCP, "Retrieve an MCP server."),
    ("PATCH", (*SERVERS, "*")): Op(
        MCP,
        "Change an MCP server.",
        body(**{k: v for k, v in MCP_SERVER.items() if k != "label"}),
    ),
    ("DELETE", (*SERVERS, "*")): Op(MCP, "Remove an MCP server."),
    ("GET", (*SERVERS, "*", "tools")): Op(MCP, "The tools an MCP server offers."),
    # serverless or dedicated
    ("GET", ("tenants", "*", "advice")): Op(
        ADVICE,
        "Serverless or dedicated, for a tenant's traffic.",
        query={
            "days": {"type": "number", "exclusiveMinimum": 0, "maximum": 366},
            "model": STRING,
            "cost_model": STRING,
            "scaling": {"enum": ["arrivals", "peak"]},
        },
    ),
    ("GET", ("advice",)): Op(
        ADVICE,
        "Serverless or dedicated, every tenant.",
        query={"days": {"type": "number", "exclusiveMinimum": 0}, "cost_model": STRING},
    ),
    # datasets
    ("GET", ("datasets",)): Op(DATASETS, "List datasets."),
    ("POST", ("datasets",)): Op(
        DATASETS,
        "Create a dataset from an uploaded file.",
        body(
            ["name"],
            name=TEXT,
            file_id=STRING,
            owner=nullable(STRING),
            validation_fraction=nullable({"type": "number", "minimum": 0, "maximum": 0.5}),
            seed=integer(0),
            licence=nullable(STRING),
            source=nullable(STRING),
        ),
    ),
    ("GET", ("datasets", "*")): Op(DATASETS, "Retrieve a dataset."),
    ("DELETE", ("datasets", "*")): Op(DATASETS, "Delete a dataset."),
    ("GET", DATASET_VERSION): Op(DATASETS, "Retrieve a dataset version."),
    ("DELETE", DATASET_VERSION): Op(DATASETS, "Delete a dataset version."),
    ("GET", (*DATASET_VERSION, "rows")): Op(
        DATASETS,
        "A page of a version's rows.",
        query={
            "split": {"enum": ["train", "validation"]},
            "offset": integer(0),
            "limit": integer(1, 100),
        },
    ),
    ("POST", (*DATASET_VERSION, "publish")): Op(DATASETS, "Publish a dataset version."),
    # evaluations
    ("GET", ("evals",)): Op(EVALS, "List evaluations.", query={"limit": integer(1, 100)}),
    ("POST", ("evals",)): Op(
        EVALS,
        "Start an evaluation.",
        body(["model"], model=TEXT, dataset=nullable(OBJECT), metrics=nullable(OBJECT)),
    ),
    ("GET", ("evals", "*")): Op(EVALS, "Retrieve an evaluation."),
    ("POST", ("evals", "*", "cancel")): Op(EVALS, "Cancel an evaluation."),
    # the audit log
    ("GET", ("audit",)): Op(
        AUDIT,
        "Audit log entries, newest first.",
        query={
            "tenant_id": STRING,
            "limit": integer(1, 1000),
            "before_seq": integer(0),
            "since": TIME,
        },
    ),
    ("GET", ("audit", "verify")): Op(AUDIT, "Check the audit log's hash chain."),
}
