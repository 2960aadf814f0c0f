"""Whose work a request is, as the gateway tells a replica: headers an engine may use to share
itself fairly between tenants. Engines that do not know them ignore them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from tokenmill.errors import InvalidRequest

TENANT_HEADER = "x-tokenmill-tenant"
WEIGHT_HEADER = "x-tokenmill-weight"
MAX_WEIGHT = 1000.0
_VALID_TENANT = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def tenancy_headers(tenant: str, weight: float) -> dict[str, str]:
    return {TENANT_HEADER: tenant, WEIGHT_HEADER: f"{weight:g}"}


def parse_tenancy(headers: Mapping[str, str]) -> tuple[str, float]:
    """The tenant (``""`` when not given) and its weight (1 when not given)."""
    tenant = headers.get(TENANT_HEADER, "")
    if tenant and not _VALID_TENANT.fullmatch(tenant):
        raise InvalidRequest(
            f"'{TENANT_HEADER}' must be 1 to 128 letters, digits or '.', '_', ':', '-'.",
            param=TENANT_HEADER,
        )
    raw = headers.get(WEIGHT_HEADER)
    if raw is None:
        return tenant, 1.0
    try:
        weight = float(raw)
    except ValueError:
        weight = math.nan
    if not 0 < weight <= MAX_WEIGHT:  # also refuses nan
        raise InvalidRequest(
            f"'{WEIGHT_HEADER}' must be a number above 0 and at most {MAX_WEIGHT:g}.",
            param=WEIGHT_HEADER,
        )
    return tenant, weight
