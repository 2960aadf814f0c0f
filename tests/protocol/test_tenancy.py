"""The headers that tell a replica whose work a request is."""

from __future__ import annotations

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tenancy import (
    TENANT_HEADER,
    WEIGHT_HEADER,
    parse_tenancy,
    tenancy_headers,
)


def test_headers_round_trip() -> None:
    assert parse_tenancy(tenancy_headers("ten_abc", 3)) == ("ten_abc", 3.0)
    assert parse_tenancy(tenancy_headers("ten_abc", 0.5)) == ("ten_abc", 0.5)


def test_without_headers_the_work_is_nobodys_at_weight_one() -> None:
    assert parse_tenancy({}) == ("", 1.0)


@pytest.mark.parametrize("weight", ["0", "-1", "1001", "nan", "inf", "abc", ""])
def test_a_bad_weight_is_refused(weight: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_tenancy({TENANT_HEADER: "t", WEIGHT_HEADER: weight})
    assert caught.value.param == WEIGHT_HEADER


@pytest.mark.parametrize("tenant", ["a b", "x" * 129, "é"])
def test_a_bad_tenant_is_refused(tenant: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_tenancy({TENANT_HEADER: tenant})
    assert caught.value.param == TENANT_HEADER
