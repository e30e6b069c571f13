"""The `file_reader` source under a real `leo run`: only strict JSON gets in, each bad line is
named and skipped, and nothing stops the good lines around it or the files after it."""

from __future__ import annotations

import json

from ..conftest import Project, leo, wait_until

READER = """
version: 1
pipelines:
  p:
    bots:
      - {id: reader, use: file_reader, with: {path: data}, out: lines}
"""


def test_bad_lines_are_named_skipped_and_shown_while_good_lines_and_later_files_flow(
    project: Project, leo_run
) -> None:
    project.write(READER)
    data = project.root / "data"
    data.mkdir()
    # a.ndjson: a BOM line first, then good and bad lines mixed.
    (data / "a.ndjson").write_bytes(
        b'\xef\xbb\xbf{"n": 1}\n'
        b'{"n": 2}\n'
        b'{"n": NaN}\n'
        + b"[" * 2000 + b"]" * 2000 + b"\n"
        b'{"n": "caf\xe9"}\n'  # Latin-1, not UTF-8: refused, never replaced
        b'  {"n": 3,   "kept": "as written"}  \r\n'
        b"\n"
        b'{"n": 4}\n'
    )
    (data / "b.ndjson").write_bytes('{"n": 100}\n{"n": 101}\n'.encode("utf-16"))  # refused as a whole
    (data / "c.ndjson").write_bytes(b'{"n": 5}\n')

    run = leo_run(project, "--no-http")
    store = project.store()
    wait_until(lambda: len(store.read("lines", 0)) == 4, what="the good lines")

    assert [event.payload_json for event in store.read("lines", 0)] == [
        '{"n": 2}', '{"n": 3,   "kept": "as written"}', '{"n": 4}', '{"n": 5}'
    ]
    a, b = data / "a.ndjson", data / "b.ndjson"
    expected = [
        f"{a}:1: starts with a UTF-8 byte order mark",
        f"{a}:3: NaN and Infinity are not JSON",
        f"{a}:4: nested deeper than 100 levels",
        f"{a}:5: not UTF-8: invalid byte 0xe9",
        f"{b}:1: is UTF-16 or UTF-32, not UTF-8",
    ]
    wait_until(lambda: all(message in run.log() for message in expected), what="a warning per refused line")

    status = leo("status", "--json", "-f", str(project.file))
    assert status.returncode == 0, status.stderr
    (reader,) = json.loads(status.stdout)["bots"]
    assert reader["rejected"]["count"] == 5
    assert [message.split(": ", 1)[0] for message in reader["rejected"]["recent"]] == [
        f"{a}:1", f"{a}:3", f"{a}:4", f"{a}:5", f"{b}:1"
    ]
    shown = leo("status", "-f", str(project.file)).stdout
    assert "bot 'reader' refused 5 input line(s)" in shown and f"{a}:5: not UTF-8" in shown

    # The reader goes on: a line appended later, and the UTF-16 file replaced by UTF-8 text.
    with a.open("ab") as handle:
        handle.write(b'{"n": 6}\n')
    replaced = data / "b.tmp"
    replaced.write_text('{"n": 100}\n')
    replaced.rename(b)
    wait_until(lambda: len(store.read("lines", 0)) == 6, what="the appended line and the replaced file")
    assert sorted(event.payload["n"] for event in store.read("lines", 0)) == [2, 3, 4, 5, 6, 100]
    assert run.stop() == 0
