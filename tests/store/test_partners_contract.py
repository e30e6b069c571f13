"""The store contract for partner accounts (runs once per backend, like test_store_contract.py)."""

from __future__ import annotations

import hashlib

import pytest

from leo_runtime.errors import Conflict
from leo_runtime.store import Store

from .conftest import Backend, FakeClock


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def test_create_and_find_by_token_hash_or_name(store: Store, clock: FakeClock) -> None:
    created = store.create_partner("acme", _hash("t1"), '{"warehouse":"NYC"}')
    assert (created.name, created.scope_json, created.created_at, created.revoked_at) == (
        "acme", '{"warehouse":"NYC"}', clock.now, None)
    assert created.token_hash == _hash("t1")
    assert store.partner_by_token_hash(_hash("t1")) == created
    assert store.partner("acme") == created
    assert store.partner_by_token_hash(_hash("t2")) is None
    assert store.partner("nobody") is None
    assert "token_hash" not in repr(created)


def test_a_taken_name_is_a_conflict_even_after_revocation(store: Store) -> None:
    store.create_partner("acme", _hash("t1"), None)
    store.revoke_partner("acme")
    with pytest.raises(Conflict, match="partner 'acme' already exists"):
        store.create_partner("acme", _hash("t2"), None)
    assert [p.name for p in store.partners()] == ["acme"]
    assert store.partner_by_token_hash(_hash("t2")) is None


def test_partners_are_listed_by_name_revoked_ones_included(store: Store) -> None:
    for name in ("globex", "acme", "initech"):
        store.create_partner(name, _hash(name), None)
    store.revoke_partner("globex")
    assert [(p.name, p.revoked_at is not None) for p in store.partners()] == [
        ("acme", False), ("globex", True), ("initech", False)]


def test_revoking_keeps_the_first_time_and_unknown_names_answer_none(store: Store, clock: FakeClock) -> None:
    store.create_partner("acme", _hash("t1"), None)
    first = store.revoke_partner("acme")
    clock.advance(5000)
    again = store.revoke_partner("acme")
    assert first.revoked_at == again.revoked_at == clock.now - 5000
    assert store.partner_by_token_hash(_hash("t1")).revoked_at == first.revoked_at
    assert store.revoke_partner("nobody") is None


def test_a_revocation_is_seen_at_once_by_another_store_object(backend: Backend, store: Store) -> None:
    other = backend.open()  # like another process on the same database
    store.create_partner("acme", _hash("t1"), None)
    assert other.partner_by_token_hash(_hash("t1")).revoked_at is None
    store.revoke_partner("acme")
    assert other.partner_by_token_hash(_hash("t1")).revoked_at is not None
