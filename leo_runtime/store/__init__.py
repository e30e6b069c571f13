"""The durable store behind one interface (`Store`); `open_store` picks the backend by URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import StoreError
from ..safetext import redact_urls
from .base import (
    BotInfo,
    CheckpointInfo,
    ObjectBatch,
    ObjectChange,
    ObjectCounts,
    ObjectPage,
    ObjectRecord,
    ObjectRow,
    PartnerRecord,
    PendingEvent,
    QueueInfo,
    RowPage,
    RunCommit,
    Store,
)
from .base_streams import StreamPartitionRecord, StreamRecord
from .sqlite import SQLiteStore

__all__ = ["BotInfo", "CheckpointInfo", "ObjectBatch", "ObjectChange", "ObjectCounts", "ObjectPage", "ObjectRecord",
           "ObjectRow", "PartnerRecord", "PendingEvent", "QueueInfo", "RowPage", "RunCommit", "SQLiteStore", "Store",
           "StreamPartitionRecord", "StreamRecord", "open_store", "resolve_store_path"]


def resolve_store_path(url: str, base_dir: str | Path | None = None) -> tuple[Path, dict[str, str]]:
    """The SQLite file a store URL names, and its query options.

    ``sqlite:///leo.db`` is relative to `base_dir` (the pipelines file's folder),
    ``sqlite:////var/lib/leo.db`` is absolute, and a bare path works too.
    """
    text = url.strip()
    if not text:
        raise StoreError("store URL is empty: use sqlite:///leo.db")
    if "://" not in text:
        path_text, query = text, ""
    else:
        parts = urlsplit(text)
        if parts.scheme != "sqlite":
            raise StoreError(
                f"store URL {redact_urls(url)!r}: unsupported scheme '{parts.scheme}' (use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DB)"
            )
        if parts.netloc:
            raise StoreError(f"store URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path")
        path_text, query = parts.path[1:] if parts.path.startswith("/") else parts.path, parts.query
    if not path_text:
        raise StoreError(f"store URL {url!r} names no file: use sqlite:///leo.db")
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    # Blank values are kept so that a misspelt or valueless option ("?readonly") is reported, not ignored.
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    return path.resolve(), options


def open_store(url: str, base_dir: str | Path | None = None, *, read_only: bool = False) -> Store:
    """Open (and migrate) the store a URL names. Raises StoreError with the URL on failure.

    ``postgresql://`` (or ``postgres://``) URLs open a `PostgresStore`; anything else is SQLite.
    A file that is not a leo store is refused and left untouched. ``read_only=True`` (what the
    reading commands use) never creates, migrates or writes: see `SQLiteStore`.
    """
    if url.strip().partition("://")[0] in ("postgresql", "postgres"):
        from .postgres import PostgresStore  # psycopg is imported only by those who use it

        return PostgresStore(url, read_only=read_only)
    path, options = resolve_store_path(url, base_dir)
    unknown = set(options) - {"synchronous", "busy_timeout"}
    if unknown:
        raise StoreError(f"store URL {url!r}: unknown option {sorted(unknown)[0]!r} (known: busy_timeout, synchronous)")
    try:
        busy_timeout = float(options.get("busy_timeout", 30))
    except ValueError:
        raise StoreError(f"store URL {url!r}: busy_timeout must be a number of seconds") from None
    return SQLiteStore(
        path, busy_timeout=busy_timeout, synchronous=options.get("synchronous", "NORMAL"), read_only=read_only
    )
