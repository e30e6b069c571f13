"""Partner accounts: tokens shown once and stored as hashes, and the scope that limits what a
partner sees.

A token is 32 random bytes (``secrets``) behind a ``leo_`` prefix. The store keeps only its
SHA-256: a token carries 256 bits of entropy, so a fast hash is as safe as a slow one and lets
every request find its partner with one indexed lookup. The lookup result is compared again
with `hmac.compare_digest`, so no comparison on secret material depends on where bytes differ.

A scope is a query (README, "Queries") over an object's data. `Partner.sees` is THE scope
check: Get Object, batches and streams all ask it, so a partner sees the same objects
everywhere.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import NAME_PATTERN, NAME_RULE
from .errors import InputError, NotFound, QueryError, did_you_mean
from .jsonio import JSONInputError, canonical, parse
from .query import Query
from .safetext import shown
from .store import PartnerRecord, Store

TOKEN_PREFIX = "leo_"
_NAME = re.compile(NAME_PATTERN)
NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class Partner:
    """A live partner as a request sees it: who it is and what it may see."""

    id: int
    name: str
    scope: Query | None

    def sees(self, data: Any) -> bool:
        """Whether an object's data lies inside this partner's scope (no scope: everything).

        For a change record pass its ``data``: a delete's data is the last known state, so a
        delete is seen exactly when its last state was.
        """
        return self.scope is None or self.scope.matches(data)


def new_token() -> str:
    """A fresh partner token: ``leo_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """What the store keeps of a token (SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def check_name(name: str) -> str:
    """A partner name follows the rule of every other name (letters, digits, ``_ . -``)."""
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or not _NAME.match(name):
        raise InputError(f"partner name {name!r} is not valid: {NAME_RULE} (at most {NAME_MAX} characters)")
    return name


def check_scope(scope: Any, where: str = "scope") -> dict[str, Any] | None:
    """Validate a scope query (a mapping, or None / ``{}`` for "every object"); return it.

    Raises `QueryError` naming `where` and the field: ``scope: field 'quantity': unknown
    operator 'less' (did you mean 'lt'?)``.
    """
    if scope is None:
        return None
    if not isinstance(scope, Mapping):
        raise QueryError(f"{where}: a scope is a query: a JSON object of field paths to conditions, "
                         f'like {{"warehouse": "NYC"}}')
    try:
        Query.compile(scope)
    except QueryError as exc:
        located = QueryError(f"{where}: {exc}")
        located.path = exc.path  # kept for callers that point at the node
        raise located from None
    return dict(scope) or None


def scope_from_text(text: str, where: str = "--scope") -> dict[str, Any] | None:
    """A scope written on the command line as JSON text, validated (see `check_scope`)."""
    try:
        value = parse(text)
    except JSONInputError as exc:
        hint = "" if exc.in_content else "; write the query as JSON, like '{\"warehouse\": \"NYC\"}'"
        raise InputError(f"{where}: {exc.reason}{hint}") from None
    return check_scope(value, where)


def create_partner(store: Store, name: str, scope: Mapping[str, Any] | None = None) -> tuple[PartnerRecord, str]:
    """Create a partner; return its record and its token (the only time the token exists)."""
    check_name(name)
    checked = check_scope(scope)
    token = new_token()
    scope_json = canonical(checked).decode("utf-8") if checked else None
    return store.create_partner(name, hash_token(token), scope_json), token


def revoke_partner(store: Store, name: str) -> PartnerRecord:
    """Revoke a partner at once (every process refuses its token from the next request on)."""
    record = store.revoke_partner(name)
    if record is None:
        hint = did_you_mean(name, (partner.name for partner in store.partners()))
        raise NotFound(f"no partner {shown(name)}{hint}; `leo partners list` shows them")
    return record


def authenticate(store: Store, token: str) -> Partner | None:
    """The live partner a token belongs to, or None (unknown or revoked).

    Reads the store on every call (one indexed lookup), so a revocation by any process counts
    from the very next request.
    """
    digest = hash_token(token)
    record = store.partner_by_token_hash(digest)
    if record is None or not hmac.compare_digest(record.token_hash, digest) or record.revoked_at is not None:
        return None
    return Partner(record.id, record.name, compiled_scope(record.scope_json))


def scope_of(record: PartnerRecord) -> dict[str, Any] | None:
    """A stored partner's scope as a mapping (None: every object)."""
    return parse(record.scope_json) if record.scope_json else None


@functools.lru_cache(maxsize=4096)
def compiled_scope(scope_json: str | None) -> Query | None:
    """The compiled query of a stored scope, compiled once per distinct scope."""
    return Query.compile(parse(scope_json)) if scope_json else None
