"""Matching a change record against subscriptions: the query AND the partner's scope."""

from __future__ import annotations

import pytest

from leo_runtime.delivery.subscriptions import check_query, compile_subscription, matching
from leo_runtime.errors import QueryError


def record(op: str, data: dict, object_type: str = "inventory") -> dict:
    return {"object_type": object_type, "key": data["sku"], "op": op, "version": 1, "data": data}


def test_query_and_scope_must_both_hold() -> None:
    low_nyc = compile_subscription("w1", "inventory", {"quantity": {"lt": 5}}, '{"warehouse":"NYC"}')
    low_any = compile_subscription("w2", "inventory", {"quantity": {"lt": 5}}, None)
    everything = compile_subscription("w3", "inventory", None, {"warehouse": "SFO"})
    subs = [low_nyc, low_any, everything]
    assert matching(subs, record("updated", {"sku": "A", "quantity": 1, "warehouse": "NYC"})) == [low_nyc, low_any]
    assert matching(subs, record("created", {"sku": "B", "quantity": 1, "warehouse": "SFO"})) == [low_any, everything]
    assert matching(subs, record("updated", {"sku": "C", "quantity": 9, "warehouse": "NYC"})) == []
    # A delete matches when its last state did (a delete's data is the last state).
    assert matching(subs, record("deleted", {"sku": "A", "quantity": 1, "warehouse": "NYC"})) == [low_nyc, low_any]
    # Another object type's record matches none; bare data is matched as it is.
    assert matching(subs, record("created", {"sku": "A", "quantity": 1, "warehouse": "NYC"}, "order")) == []
    assert matching(subs, {"sku": "A", "quantity": 1, "warehouse": "NYC"}) == [low_nyc, low_any]


def test_check_query_names_the_field() -> None:
    assert check_query(None) is None and check_query({}) is None
    assert check_query({"quantity": {"lt": 5}}) == {"quantity": {"lt": 5}}
    with pytest.raises(QueryError, match=r"^query: field 'quantity': unknown operator 'less' \(did you mean 'lt'\?\)"):
        check_query({"quantity": {"less": 5}})
    with pytest.raises(QueryError, match=r"^query: a query is a JSON object"):
        check_query(["quantity"])
