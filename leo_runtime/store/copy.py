"""`leo store copy SOURCE TARGET`: move a deployment's whole state from one store to another
(SQLite to PostgreSQL is the case that matters; any pair of backends works).

The copy is generic, table by table, driven by the schema: every table the migrations create is
copied row for row (its primary keys, positions, token hashes, secrets and batch ids as they
are), except the few in `SKIPPED`, each with its reason. A table a future migration adds is
copied without anyone remembering to (tests/store/test_copy.py fails for a table that is neither
copied nor skipped on purpose).

Guarantees:

- the source is read in ONE read transaction (a consistent snapshot, even of a running store),
  opened read-only (it is never created, migrated or written);
- the target is migrated first (opening it does that) and must then be at the source's schema
  version;
- everything is written in ONE write transaction on the target: a copy that is killed midway
  leaves the target as it was, and running it again does the whole copy;
- the target must be fresh (what the migrations alone leave), or already hold exactly the
  source's data (then nothing is written and the result says so); anything else is refused,
  naming a table that differs;
- on PostgreSQL, every identity column's sequence is set past the largest key copied, so rows
  inserted later never collide with copied ones (the position counter is a table row, copied).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .dialects import Connection
from .sql import SQLStore

SKIPPED: dict[str, str] = {
    "schema_migrations": "the target is migrated by opening it; the two schema versions are compared instead",
    "runtimes": "the `leo run` processes registered on the source; each host registers itself when it starts",
    "hosts": "the source's cluster hosts; copied, a stopped host would count as live until its lease_ttl ran out "
             "and hold bots back from the hosts that do run on the target",
}
"""Tables not copied, and why."""

CLEARED: dict[str, dict[str, Any]] = {
    # A bot's lease names a `leo run` of the source: on the target nobody holds it, so the first
    # `leo run` there takes the bot at once (not after the old lease runs out).
    "bots": {"lease_owner": None, "lease_expires_at": None, "stuck_since": None},
}
"""Columns written as a fixed value instead of the source's (table: column: value)."""

_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    "postgresql": "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() "
                  "AND table_type = 'BASE TABLE'",
}
_PAGE = 2000


@dataclass
class CopyResult:
    """What a copy did: the rows of each table copied (or found already there), whether
    anything was written, and the skipped tables with their reasons."""

    rows: dict[str, int] = field(default_factory=dict)
    copied: bool = False
    schema_version: int = 0
    skipped: dict[str, str] = field(default_factory=lambda: dict(SKIPPED))

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {"copied": self.copied, "already_copied": not self.copied, "schema_version": self.schema_version,
                "rows": dict(self.rows), "total_rows": self.total, "skipped": dict(self.skipped)}


def tables(conn: Connection) -> list[str]:
    """The tables of the store on `conn`, sorted by name."""
    return sorted(row[0] for row in conn.execute(_TABLES[conn.dialect.name]))


def copied_tables(conn: Connection) -> list[str]:
    """The tables a copy moves: every table but the skipped ones."""
    return [name for name in tables(conn) if name not in SKIPPED]


def _columns(conn: Connection, table: str) -> list[str]:
    return [column[0] for column in conn.execute(f'SELECT * FROM "{table}" LIMIT 0').description]


def _rows(conn: Connection, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` (the listed columns, `CLEARED` ones replaced), page by page."""
    cleared = CLEARED.get(table, {})
    fixed = [(index, cleared[name]) for index, name in enumerate(columns) if name in cleared]
    listed = ", ".join(f'"{name}"' for name in columns)
    cursor = conn.execute(f'SELECT {listed} FROM "{table}"')
    while True:
        page = cursor.fetchmany(_PAGE)  # type: ignore[attr-defined]
        if not page:
            return
        for row in page:
            values = tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)
            if fixed:
                mutable = list(values)
                for index, value in fixed:
                    mutable[index] = value
                values = tuple(mutable)
            yield values


def _digest(rows: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    """(row count, an order-free digest of the rows): tables have primary keys, so a sum of
    the rows' hashes tells two tables' contents apart whatever order they are read in."""
    count = 0
    total = 0
    for row in rows:
        count += 1
        total += int.from_bytes(hashlib.sha256(repr(row).encode()).digest()[:16], "big")
    return count, total % (1 << 128)


def _contents(conn: Connection, names: Sequence[str], columns: dict[str, list[str]],
              progress: Callable[[int], None] | None = None) -> dict[str, tuple[int, int]]:
    return {name: _digest(_counted(_rows(conn, name, columns[name]), progress)) for name in names}


def _counted(rows: Iterable[tuple[Any, ...]], progress: Callable[[int], None] | None) -> Iterator[tuple[Any, ...]]:
    """`rows`, telling `progress` of every page of them read."""
    done = 0
    for row in rows:
        yield row
        done += 1
        if progress is not None and done == _PAGE:
            progress(done)
            done = 0
    if progress is not None and done:
        progress(done)


def _fresh_contents(names: Sequence[str], columns: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """What the migrations alone leave in each table (their seed rows): a new store's tables."""
    from .sqlite import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="leo-copy-") as folder:
        fresh = SQLiteStore(Path(folder) / "fresh.db")
        try:
            conn = fresh._conn()
            return {name: _digest(_rows(conn, name, columns[name])) for name in names}
        finally:
            fresh.close()


def count_rows(source: SQLStore) -> int:
    """The rows a copy of `source` would write (to size a progress bar)."""
    with source.snapshot():
        conn = source._conn()
        return sum(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in copied_tables(conn))


def copy_store(
    source: SQLStore, target: SQLStore, *, progress: Callable[[int], None] | None = None
) -> CopyResult:
    """Copy `source`'s state into `target` (see the module docstring); `progress(rows)` is
    called as rows are written (`count_rows` sizes a progress bar)."""
    if source.url == target.url:
        raise StoreError(f"store copy: the source and the target are the same store ({source.url})")
    result = CopyResult()
    with source.snapshot():
        src = source._conn()
        version = source.schema_version()
        result.schema_version = version
        target_version = target.schema_version()
        if target_version != version:
            raise StoreError(
                f"store copy: the target {target.url} has schema version {target_version}, the source {source.url} "
                f"{version}; both must be at the same version (upgrade leo-runtime, or migrate the older one by "
                "running `leo run` on it once)"
            )
        names = copied_tables(src)
        columns = {name: _columns(src, name) for name in names}
        with target._write() as dst:
            _check_tables(target, names, columns, dst)
            now = _contents(dst, names, columns)
            fresh = _fresh_contents(names, columns)
            if now != fresh:
                theirs = _contents(src, names, columns, progress)  # instead of copying: the bar's rows
                if now == theirs:
                    result.rows = {name: count for name, (count, _) in theirs.items()}
                    return result
                # A table that differs from the source's, one holding data of its own rather than none if any.
                differs = sorted((now[name] == fresh[name], name) for name in names if now[name] != theirs[name])[0][1]
                raise StoreError(
                    f"store copy: the target {target.url} already holds other data (table {differs}: "
                    f"{now[differs][0]} row(s), the source has {theirs[differs][0]}); copy into a new, empty "
                    "database (or another ?schema=) only"
                )
            for name in names:
                try:
                    result.rows[name] = _copy_table(src, dst, name, columns[name], progress)
                except (source._db_error, target._db_error) as exc:  # e.g. a text PostgreSQL cannot hold
                    raise StoreError(
                        f"store copy: table {name} could not be copied to {target.url}: {target._error_text(exc)} "
                        "(nothing was written)"
                    ) from exc
            if dst.dialect.name == "postgresql":
                _advance_identities(dst)
            result.copied = True
    return result


def _check_tables(target: SQLStore, names: list[str], columns: dict[str, list[str]],
                  dst: Connection) -> None:
    """The target has the source's tables, with at least its columns."""
    theirs = set(copied_tables(dst))
    missing = [name for name in names if name not in theirs]
    extra = sorted(theirs - set(names))
    if missing or extra:
        raise StoreError(
            f"store copy: the target {target.url} does not have the source's tables "
            f"(missing: {', '.join(missing) or 'none'}; not in the source: {', '.join(extra) or 'none'})"
        )
    for name in names:
        lacking = sorted(set(columns[name]) - set(_columns(dst, name)))
        if lacking:
            raise StoreError(f"store copy: the target {target.url} table {name} lacks column(s) {', '.join(lacking)}")


def _copy_table(src: Connection, dst: Connection, name: str, columns: list[str],
                progress: Callable[[int], None] | None) -> int:
    """Replace the target table's rows (the migrations' seed rows at most) with the source's."""
    dst.execute(f'DELETE FROM "{name}"')
    statement = (f'INSERT INTO {name} ({", ".join(columns)}) '
                 f'VALUES ({", ".join("?" for _ in columns)})')
    done = 0
    page: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal done, page
        dst.executemany(statement, page)
        done += len(page)
        if progress is not None:
            progress(len(page))
        page = []

    for row in _rows(src, name, columns):
        page.append(row)
        if len(page) >= 10 * _PAGE:
            flush()
    if page:
        flush()
    return done


def _advance_identities(dst: Connection) -> None:
    """Every identity column's sequence past the largest value copied (PostgreSQL)."""
    raw = dst.raw  # type: ignore[attr-defined]
    identities = raw.execute(
        "SELECT table_name::text, column_name::text FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in identities:
        raw.execute(
            f'SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE((SELECT MAX("{column}") FROM "{table}"), 0) + 1, '
            "false)",
            (f'"{table}"', column),
        )
