"""The ingest API casts an object type's declared fields, and refuses (422, nothing written) a
value that does not cast, naming the item and the field."""

from __future__ import annotations

from collections.abc import Callable

from ..conftest import payloads_of
from .conftest import Api

TYPES = {"inventory": {"key": "sku", "fields": {"quantity": "integer", "price": "number"}}}


def test_the_ingest_api_casts_declared_fields(make_api: Callable[..., Api]) -> None:
    api = make_api(object_types=TYPES)
    with api.admin() as client:
        ok = client.post("/v1/admin/objects/inventory", json=[{"sku": "A-1", "quantity": "6", "price": "2.5"}])
        assert ok.status_code == 200, ok.text
        refused = client.post("/v1/admin/objects/inventory", json=[{"sku": "B-2", "quantity": 1},
                                                                  {"sku": "C-3", "price": "cheap"}])
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "body: item 2: field 'price': 'cheap' is not a number (object_types.inventory.fields says number); fix the "
        "input, or change the field's type"
    )
    assert [change["data"] for change in payloads_of(api.store, "inventory.changes")] == [
        {"sku": "A-1", "quantity": 6, "price": 2.5}
    ]
