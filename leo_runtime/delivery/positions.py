"""Stream positions as partners see them: opaque strings, decoded strictly.

A position names a place in ONE partition of ONE stream: 8 hex digits that tag the stream and
partition (a CRC-32 of both), then the store's global position in hex. Partners never parse it;
the tag lets the API tell a position of another stream or partition from a good one (and say
which partition it belongs to), instead of silently reading from the wrong place.
"""

from __future__ import annotations

import functools
import re
import zlib

from ..errors import InputError
from ..safetext import shown

_POSITION = re.compile(r"[0-9a-f]{9,24}", re.ASCII)
MAX_SEQ = (1 << 63) - 1  # SQLite's largest integer


@functools.lru_cache(maxsize=4096)
def position_tag(stream_id: str, partition: int) -> str:
    """The 8 hex digits every position of that stream's partition starts with."""
    return f"{zlib.crc32(f'{stream_id}/{partition}'.encode()):08x}"


def encode_position(stream_id: str, partition: int, seq: int) -> str:
    """The opaque position of global position `seq` in a partition."""
    return f"{position_tag(stream_id, partition)}{seq:x}"


def decode_position(text: object, stream_id: str, partition: int, partitions: int, field: str) -> int:
    """The global position an opaque position names, or `InputError` (HTTP 422) naming `field`:
    not a position at all, or one of another partition (named) or another stream."""
    if not isinstance(text, str) or not _POSITION.fullmatch(text):
        raise InputError(f"{field}: {shown(text)} is not a stream position (use a position the API returned: a record's "
                         "position, next_position, or a partition's checkpoint)")
    tag, digits = text[:8], text[8:]
    if tag != position_tag(stream_id, partition):
        other = next((p for p in range(partitions) if position_tag(stream_id, p) == tag), None)
        where = f"partition {other} of this stream" if other is not None else "another stream"
        raise InputError(f"{field}: {shown(text)} is a position of {where}, not of partition {partition}")
    seq = int(digits, 16)
    if seq > MAX_SEQ:
        raise InputError(f"{field}: {shown(text)} is not a stream position (out of range)")
    return seq
