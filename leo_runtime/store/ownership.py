"""Which SQLite files are leo stores, and how to read one without writing to it.

leo marks every store it creates with SQLite's ``application_id`` (the 4 bytes at offset 68 of
the file header): `APPLICATION_ID`, ``0x4C454F31``, "LEO1" in ASCII. A file that is not SQLite,
carries another application's mark, or holds tables of its own without the mark belongs to
someone else: leo refuses it with a clear error and leaves it byte for byte as it was. A store
written before the mark existed (unmarked, but with leo's own ``schema_migrations``) is still
leo's: the next writing command marks it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

from ..errors import StoreError
from .migrations import SQLITE_MIGRATIONS

APPLICATION_ID = 0x4C454F31
"""``PRAGMA application_id`` of every leo store: "LEO1" in ASCII, at offset 68 of the file."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
# What migration 1 creates: an unmarked file holding these (and saying so in schema_migrations)
# is a leo store from before the mark.
_LEO_TABLES = {"schema_migrations", "queues", "positions", "events", "checkpoints", "bots"}

Ownership = Literal["leo", "unmarked", "new"]


def check_header(path: Path, url: str) -> None:
    """Refuse a file that is not SQLite or bears another application's mark, reading only its
    header (before SQLite opens it, so nothing at all is written to it)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StoreError(f"store {url}: {path} is a directory, not a store file") from None
    except OSError as exc:
        raise StoreError(f"store {url}: cannot read {path}: {exc.strerror}") from None
    if not header:
        return  # an empty file: a new store
    # A header shorter than the magic may be a new store being written by another process.
    if not (header.startswith(_SQLITE_MAGIC) or _SQLITE_MAGIC.startswith(header)):
        raise StoreError(f"store {url}: {path} is not a SQLite database; leo leaves it untouched ({_ELSEWHERE})")
    if len(header) >= 72:
        application_id = int.from_bytes(header[68:72], "big")
        if application_id not in (0, APPLICATION_ID):
            raise StoreError(_foreign(url, path, f"its SQLite application_id is 0x{application_id:08X}"))


def check_writable(path: Path, url: str) -> None:
    """A clear error, before SQLite's own "unable to open database file", when a writing
    command meets a read-only store file or folder (SQLite writes side files next to it)."""
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"store {url}: {path} is read-only; this command writes (reading commands work on it)")
    # With its side files there already (a runtime is at work), a writer needs no new files.
    if not os.access(path.parent, os.W_OK | os.X_OK) and not Path(f"{path}-wal").exists():
        raise StoreError(
            f"store {url}: folder {path.parent} is read-only; this command writes the store and SQLite's side files "
            "next to it (reading commands work on it)"
        )


def ownership(conn: sqlite3.Connection, url: str, path: Path) -> Ownership:
    """Whose the database on `conn` is: ``leo`` (marked), ``unmarked`` (a leo store from before
    the mark) or ``new`` (no tables yet); StoreError for anyone else's. Call it inside the
    transaction that will initialise or migrate the file, so that two processes agree."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0] & 0xFFFFFFFF
    if application_id == APPLICATION_ID:
        return "leo"
    if application_id != 0:
        raise StoreError(_foreign(url, path, f"its SQLite application_id is 0x{application_id:08X}"))
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    if not names:
        return "new"
    if names >= _LEO_TABLES and _first_migration(conn) == SQLITE_MIGRATIONS[0][1]:
        return "unmarked"
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    raise StoreError(_foreign(url, path, f"it holds tables leo did not make ({shown})"))


def reader_uri(path: Path) -> tuple[str, bool]:
    """How a read-only command opens `path` so that it writes nothing and creates nothing that
    stays: ``(SQLite URI, whether to add PRAGMA query_only)``.

    - ``-wal`` exists (a writer is or was at work): ``mode=ro``; SQLite's side files are there.
    - the file and its folder are writable: a normal connection with ``query_only``; SQLite
      removes the side files it makes when the connection closes (``mode=ro`` would leave them).
    - read-only file or folder: nobody can write the file, so it is read as ``immutable``
      (``mode=ro`` would fail to make the ``-shm`` file WAL readers need).
    """
    uri = path.resolve().as_uri()
    if Path(f"{path}-wal").exists():
        return f"{uri}?mode=ro", False
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return uri, True
    return f"{uri}?mode=ro&immutable=1", False


_ELSEWHERE = "use another path for the store, or an existing leo store"


def _foreign(url: str, path: Path, why: str) -> str:
    return f"store {url}: {path} is not a leo store ({why}); leo leaves it untouched: {_ELSEWHERE}"


def _first_migration(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT name FROM schema_migrations WHERE version = 1").fetchone()
    except sqlite3.Error:  # another application's schema_migrations, with other columns
        return None
    return row[0] if row else None
