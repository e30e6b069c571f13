"""Partner subscriptions (webhooks and streams): which change records each one receives.

A subscription matches a change record when its query AND its partner's scope match the record's
``data`` (README, "Queries"): a change matches when its new state matches, a delete when its last
state matched (a delete record's ``data`` already holds the last state). Both queries are
compiled once per subscription; a change is then tested against every subscription of its type.
Webhooks (the router) and streams (the stream writer) share this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bot import RunLimits
from ..errors import QueryError
from ..partners import compiled_scope
from ..query import Query

_Test = Callable[[Any], bool]


def _always(data: Any) -> bool:
    return True


MATCH_EVERYTHING: _Test = _always
"""The test of a subscription without query or scope (``test is MATCH_EVERYTHING``: every
record matches, so its data need not even be decoded)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription, compiled: its id, object type, query and its partner's scope.

    ``test(data)`` is the compiled check of both (the fastest way to ask many records).
    """

    id: str
    object_type: str
    query: Query | None = None
    scope: Query | None = None
    test: _Test = field(default=_always, repr=False, compare=False)

    def matches(self, data: Any) -> bool:
        """Whether an object's data (a change record's ``data``) is for this subscription."""
        return self.test(data)


def check_query(query: Any, where: str = "query") -> dict[str, Any] | None:
    """Validate a subscription query (a mapping; None or ``{}``: every object); return it.

    Raises `QueryError` naming `where` and the field: ``query: field 'quantity': unknown operator
    'less' (did you mean 'lt'?)`` (HTTP 422, exit 1).
    """
    if query is None:
        return None
    if not isinstance(query, Mapping):
        raise QueryError(f"{where}: a query is a JSON object of field paths to conditions, like "
                         '{"warehouse": "NYC", "quantity": {"lt": 5}}')
    try:
        Query.compile(query)
    except QueryError as exc:
        located = QueryError(f"{where}: {exc}")
        located.path = exc.path
        raise located from None
    return dict(query) or None


def compile_subscription(
    subscription_id: str,
    object_type: str,
    query: Mapping[str, Any] | Query | None,
    scope: Mapping[str, Any] | Query | str | None,
) -> Subscription:
    """Compile a subscription: `query` (a mapping or a `Query`) and the partner's `scope` (a
    mapping, a `Query`, or the scope's JSON text as the partners table stores it; None: no scope).

    Raises `QueryError` when either is malformed (stored ones were validated when written).
    """
    compiled_query = Query.compile(query) if query else None
    compiled_scope_query = compiled_scope(scope) if isinstance(scope, str) else Query.compile(scope) if scope else None
    tests = [q.predicate for q in (compiled_query, compiled_scope_query) if q is not None and q.spec]
    if not tests:
        test: _Test = _always
    elif len(tests) == 1:
        test = tests[0]
    else:
        first, second = tests

        def test(data: Any) -> bool:
            return first(data) and second(data)

    return Subscription(subscription_id, object_type, compiled_query, compiled_scope_query, test)


def fanout_limits(subscriptions: int, rows: int, *, most: int) -> RunLimits:
    """The page of a bot that writes a row per change and subscription (a stream writer, a
    webhook router): about `rows` rows a commit when each change is for every subscription, at
    most `most` changes. A commit holds the store's write lock, so other writers (an ingest, a
    partner's checkpoint) wait that long at most. The count is rounded up to a power of two, so
    the page, and with it the bot, changes only when the subscriptions double or halve."""
    rounded = 1 << max(0, subscriptions - 1).bit_length()
    return RunLimits(records=max(10, min(most, rows // rounded)), bytes=16_000_000, seconds=5.0)


def record_data(record: Any) -> Any:
    """What a subscription matches in an event payload: a change record's ``data``, else the payload."""
    if type(record) is dict and "data" in record and "op" in record:
        return record["data"]
    return record


def matching(subscriptions: Iterable[Subscription], record: Any) -> list[Subscription]:
    """The subscriptions, in the order given, that a change record (or bare object data) is for;
    a change record of another object type matches none of a subscription's."""
    data = record_data(record)
    object_type = record.get("object_type") if data is not record else None
    return [
        subscription
        for subscription in subscriptions
        if (object_type is None or subscription.object_type == object_type) and subscription.test(data)
    ]


__all__ = ["MATCH_EVERYTHING", "Subscription", "check_query", "compile_subscription", "fanout_limits", "matching",
           "record_data"]
