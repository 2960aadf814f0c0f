"""Whose work a request is and how urgent, as the gateway tells a replica: headers an engine
may use to order its queue and share itself fairly between tenants. Engines that do not know
them ignore them. And one header our engine answers a stream with: its prompt's tokens, known
before anything is generated."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from tokenmill.errors import InvalidRequest

TENANT_HEADER = "x-tokenmill-tenant"
WEIGHT_HEADER = "x-tokenmill-weight"
PRIORITY_HEADER = "x-tokenmill-priority"
PROMPT_TOKENS_HEADER = "x-tokenmill-prompt-tokens"
ADAPTER_HEADER = "x-tokenmill-adapter"  # a LoRA adapter of the base model to serve the request
MAX_WEIGHT = 1000.0
_VALID_TENANT = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Priority(IntEnum):
    """Queue classes, most urgent first (OpenAI's service tiers, and batch work as flex)."""

    PRIORITY = 0
    DEFAULT = 1
    FLEX = 2


@dataclass(frozen=True, slots=True)
class Tenancy:
    tenant: str = ""
    weight: float = 1.0
    priority: Priority = Priority.DEFAULT
    adapter: str | None = None  # sent by the gateway; the engine reads it with its own check

    def headers(self) -> dict[str, str]:
        headers = {
            TENANT_HEADER: self.tenant,
            WEIGHT_HEADER: f"{self.weight:g}",
            PRIORITY_HEADER: self.priority.name.lower(),
        }
        if self.adapter is not None:
            headers[ADAPTER_HEADER] = self.adapter
        return headers


def parse_tenancy(headers: Mapping[str, str]) -> Tenancy:
    """What the headers say; without them the work is nobody's, at weight 1, default class."""
    tenant = headers.get(TENANT_HEADER, "")
    if tenant and not _VALID_TENANT.fullmatch(tenant):
        raise InvalidRequest(
            f"'{TENANT_HEADER}' must be 1 to 128 letters, digits or '.', '_', ':', '-'.",
            param=TENANT_HEADER,
        )
    return Tenancy(tenant, _weight(headers.get(WEIGHT_HEADER)), _priority(headers))


def _weight(raw: str | None) -> float:
    if raw is None:
        return 1.0
    try:
        weight = float(raw)
    except ValueError:
        weight = math.nan
    if not 0 < weight <= MAX_WEIGHT:  # also refuses nan
        raise InvalidRequest(
            f"'{WEIGHT_HEADER}' must be a number above 0 and at most {MAX_WEIGHT:g}.",
            param=WEIGHT_HEADER,
        )
    return weight


def _priority(headers: Mapping[str, str]) -> Priority:
    raw = headers.get(PRIORITY_HEADER, "default")
    try:
        return Priority[raw.upper()]
    except KeyError:
        names = ", ".join(p.name.lower() for p in Priority)
        raise InvalidRequest(
            f"'{PRIORITY_HEADER}' must be one of {names}.", param=PRIORITY_HEADER
        ) from None
