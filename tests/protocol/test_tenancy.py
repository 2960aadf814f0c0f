"""The headers that tell a replica whose work a request is and how urgent."""

from __future__ import annotations

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.protocol.tenancy import (
    PRIORITY_HEADER,
    TENANT_HEADER,
    WEIGHT_HEADER,
    Priority,
    Tenancy,
    parse_tenancy,
)


@pytest.mark.parametrize(
    "tenancy",
    [Tenancy("ten_abc", 3), Tenancy("ten_abc", 0.5, Priority.FLEX), Tenancy("t", 1, Priority(0))],
)
def test_headers_round_trip(tenancy: Tenancy) -> None:
    assert parse_tenancy(tenancy.headers()) == tenancy


def test_without_headers_the_work_is_nobodys_at_weight_one_in_the_default_class() -> None:
    assert parse_tenancy({}) == Tenancy("", 1.0, Priority.DEFAULT)


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


@pytest.mark.parametrize("priority", ["urgent", "", "0", "FLEX "])
def test_an_unknown_class_is_refused(priority: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_tenancy({PRIORITY_HEADER: priority})
    assert caught.value.param == PRIORITY_HEADER
