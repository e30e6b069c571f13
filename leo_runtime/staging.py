"""All-or-nothing puts: check every line first, then publish them all in one transaction.

`stage_lines` reads NDJSON (a file or stdin), judges every line with the strict parser
(`jsonio`) and keeps the accepted text in a spool (memory, then a temporary file), so what is
published is exactly what was checked even if the source changes meanwhile. `publish` appends
the spool to a queue in ONE store transaction: a bad line, Ctrl-C or kill -9 at any point
leaves the queue without a single one of the lines.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from .jsonio import JSONInputError, check_each, check_encoding
from .store import Store

MAX_PROBLEMS = 5
"""How many bad lines one refusal names; reading stops there."""
MAX_LINE_BYTES = 16 << 20
"""The longest line accepted (16 MiB); a longer one is refused without being held in memory.
(Decoding a line to check it can take some 30 times its size: this bounds what one line costs.)"""

_SPOOL_IN_MEMORY = 64 << 20
_READ_SIZE = 1 << 20

Progress = Callable[[int], None]


class StagedLines:
    """Lines that passed the strict check, in order, as stored text (blank lines dropped)."""

    def __init__(self, spool: IO[bytes], count: int) -> None:
        self._spool = spool
        self.count = count

    def texts(self, advance: Progress | None = None) -> Iterator[str]:
        """The staged lines as stored text, in order; ``advance(n)`` is told how many went by."""
        self._spool.seek(0)
        for lines in _blocks_of_lines(self._spool):
            if lines is None:  # never: a staged line was checked for length already
                continue
            yield from lines.decode("utf-8").split("\n")  # checked as UTF-8 already
            if advance is not None:
                advance(lines.count(b"\n") + 1)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> StagedLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_lines(source: IO[bytes], name: str, *, advance: Progress | None = None) -> StagedLines:
    """Check every line of `source` (NDJSON: one JSON value per line) and stage the good ones.

    Surrounding blanks (and a CR before the LF) are not part of a line; blank lines are skipped;
    a last line without its newline counts. Raises `JSONInputError` naming up to
    `MAX_PROBLEMS` bad lines as ``NAME:LINE: reason`` (its ``line`` is the first one);
    ``advance(n)`` is told how many bytes were read.
    """
    # Owned by the StagedLines returned (closed here only on failure).
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    problems: list[JSONInputError] = []
    count = 0
    seen = 0  # lines before the current block
    try:
        for block in _blocks_of_lines(source, advance=advance):
            if not seen and block:
                check_encoding(block[:4], name)  # a BOM or UTF-16/32 is said once, for the whole input
            if block is None:
                seen += 1
                problems.append(JSONInputError(f"longer than {MAX_LINE_BYTES >> 20} MiB", f"{name}:{seen}", seen))
            else:
                lines = [line.strip(b" \t\r") for line in block.split(b"\n")]
                for index, reason in check_each(lines):
                    problems.append(JSONInputError(reason, f"{name}:{seen + index + 1}", seen + index + 1))
                seen += len(lines)
                if not problems:
                    kept = [line for line in lines if line]
                    if kept:
                        spool.write(b"\n".join(kept))
                        spool.write(b"\n")
                        count += len(kept)
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            first, *others = problems[:MAX_PROBLEMS]
            also = [str(other) for other in others]
            if len(problems) >= MAX_PROBLEMS:
                also.append(f"stopped after {MAX_PROBLEMS} bad lines")
            raise JSONInputError(first.reason, first.where, first.line, also=also)
    except BaseException:
        spool.close()
        raise
    spool.flush()
    return StagedLines(spool, count)


def publish(store: Store, queue: str, staged: StagedLines, *, advance: Progress | None = None) -> tuple[int, int]:
    """Append every staged line to `queue` in ONE transaction; (first, last) position, or
    (0, 0) when nothing was staged. Other writers wait for it (up to the store's busy timeout)."""
    if not staged.count:
        return 0, 0
    return store.append_texts(queue, staged.texts(advance))


def _blocks_of_lines(source: IO[bytes], *, advance: Progress | None = None) -> Iterator[bytes | None]:
    """`source` in blocks of whole lines (joined by newlines, without the last one), read in
    large pieces: splitting a block is far cheaper than reading line by line. A line longer than
    `MAX_LINE_BYTES` comes out as None, in its place, and is never held whole."""
    pending: list[bytes] = []  # the start of a line not ended yet
    pending_size = 0
    skipping = False  # inside a line already found too long
    while piece := source.read(_READ_SIZE):
        if advance is not None:
            advance(len(piece))
        if skipping:
            end = piece.find(b"\n")
            if end < 0:
                continue
            skipping = False
            piece = piece[end + 1:]
        cut = piece.rfind(b"\n")
        if cut < 0:
            pending.append(piece)
            pending_size += len(piece)
            if pending_size > MAX_LINE_BYTES:
                pending, pending_size, skipping = [], 0, True
                yield None
            continue
        first_end = piece.find(b"\n")
        if pending_size + first_end > MAX_LINE_BYTES:  # only the first line can be that long
            yield None
            if first_end < cut:
                yield piece[first_end + 1:cut]
        else:
            pending.append(piece[:cut])
            yield b"".join(pending)
        rest = piece[cut + 1:]
        pending, pending_size = [rest], len(rest)
    if pending_size and not skipping:
        yield b"".join(pending)
