"""The ``http_poll`` source: GET a URL that answers a JSON array (or NDJSON) of objects.

Each run sends ``If-None-Match`` with the ETag of the last body it applied; 304 means nothing
changed. A 200 body is one complete read (a full snapshot deletes the keys it misses), skipped
when it is byte for byte the body applied last. The ETag and the body's hash commit with the
objects. Redirects are followed; a body larger than ``max_bytes`` is refused. Messages show the
URL without its query string or credentials, which may hold secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ..bot import BotContext, BotSettings
from ..config.models import Duration
from ..errors import BotError
from ..fieldtypes import FieldCaster
from ..jsonio import check_encoding
from ..objects import array_objects, ndjson_pages, object_rows
from . import SourceRead

if TYPE_CHECKING:  # imported when a source first polls: the CLI and other sources never need httpx
    import httpx


class HttpPollSettings(BotSettings):
    """A URL polled on the bot's schedule."""

    kind: Literal["http_poll"]
    url: str = Field(description="http(s) URL answering a JSON array (or NDJSON) of objects")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers (use ${VAR} for secrets)")
    timeout: Duration = Field(30.0, description="seconds for the whole request")
    max_bytes: int = Field(100_000_000, ge=1, description="the largest body accepted")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value


class HttpPollSource:
    """Polls a URL (see the module docstring)."""

    def __init__(self, settings: HttpPollSettings, ctx: BotContext, key_field: str, *, full: bool,
                 cast: FieldCaster | None = None) -> None:
        self.settings = settings
        self.key_field = key_field
        self.cast = cast
        parts = urlsplit(settings.url)
        self.shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self.client: httpx.Client | None = None

    def watch_paths(self) -> list[Path]:
        return []

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def reads(self, ctx: BotContext) -> Iterator[SourceRead]:
        body, etag = self._get(ctx.state.get("etag"))
        if body is None:
            return  # 304: unchanged
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        ctx.state["etag"] = etag
        if ctx.state.get("body") == digest:
            return
        ctx.state["body"] = digest
        name = f"GET {self.shown}"
        check_encoding(body, name)
        if body.lstrip(b" \t\r\n").startswith(b"["):
            yield SourceRead(object_rows(array_objects(body, name), self.key_field, name, self.cast), True, name)
        else:  # NDJSON: lines the store holds as they are need no parsing
            yield SourceRead((), True, name, ndjson_pages(body.split(b"\n"), name, self.key_field, cast=self.cast))

    def _get(self, etag: str | None) -> tuple[bytes | None, str | None]:
        import httpx

        if self.client is None:
            self.client = httpx.Client(timeout=self.settings.timeout, follow_redirects=True)
        headers = dict(self.settings.headers)
        if etag:
            headers["If-None-Match"] = etag
        limit = self.settings.max_bytes
        try:
            with self.client.stream("GET", self.settings.url, headers=headers) as response:
                if response.status_code == 304:
                    return None, etag
                if response.status_code != 200:
                    raise BotError(f"GET {self.shown}: HTTP {response.status_code} {response.reason_phrase}; tried again later")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise BotError(f"GET {self.shown}: the body is larger than max_bytes ({limit}); raise max_bytes")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("etag")
        except httpx.HTTPError as exc:
            raise BotError(f"GET {self.shown}: {type(exc).__name__}: {_reason(exc)}; tried again later") from None


def _reason(exc: httpx.HTTPError) -> str:
    # httpx messages may repeat the full URL (query string included): keep only what went wrong.
    text = str(exc) or "no answer"
    return text.split(" for url ", 1)[0].split(" '", 1)[0]
