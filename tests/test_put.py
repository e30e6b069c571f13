"""`leo queues put`: strict JSON only, every line or none, whatever happens to the process."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leo_runtime import staging
from leo_runtime.cli import app
from leo_runtime.events import RawJSON
from leo_runtime.jsonio import JSONInputError
from leo_runtime.staging import stage_lines

from .conftest import FILTER_PIPELINE, LEO, Project, wait_until

runner = CliRunner()


def put(project: Project, *args: str, input: bytes | str | None = None):
    return runner.invoke(app, ["queues", "put", *args, "-f", str(project.file)], input=input, env={"LEO_STORE": ""})


def stored(project: Project, queue: str) -> list[str]:
    store = project.store()
    try:
        return [event.payload_json for event in store.read(queue, 0, 10_000_000)]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b'\xef\xbb\xbf{"a":1}\n', 1, "byte order mark"),
        ('{"a":1}\n{"b":2}\n'.encode("utf-16"), 1, "UTF-16"),
        ('{"a":1}\n'.encode("utf-16-le"), 1, "UTF-16"),
        (b'{"a":1}\n{"a":NaN}\n', 2, "NaN and Infinity are not JSON"),
        (b'{"a":1}\n{"a":-Infinity}\n', 2, "NaN and Infinity are not JSON"),
        (b'{"a":1}\n' + b"[" * 2000 + b"]" * 2000 + b"\n", 2, "nested deeper than 100 levels"),
        (b'{"a":"\xff"}\n', 1, "not UTF-8: invalid byte 0xff"),
        (b'{"a":"\xed\xa0\x80"}\n', 1, "not UTF-8"),  # an encoded surrogate
        (b'{"a":"\\udc00"}\n', 1, "surrogate"),
        (b'{"a":1} {"b":2}\n', 1, "unexpected content after document"),
        (b'{"a":"tab\there"}\n', 1, "control character"),
        (b"{'a': 1}\n", 1, "not JSON"),
        (b'{"a":1,}\n', 1, "trailing comma"),
        (b"// a comment\n", 1, "not JSON"),
        (b'{"a":1}\n{"a":\n', 2, "not JSON"),  # stdin closed early: a cut last line
    ],
)
def test_anything_but_strict_json_is_refused_with_file_line_and_nothing_is_written(
    project: Project, content: bytes, line: int, reason: str
) -> None:
    project.write(FILTER_PIPELINE)
    source = project.root / "in.ndjson"
    source.write_bytes(content)

    result = put(project, "inventory.in", str(source))

    assert result.exit_code == 1, result.output
    assert f"{source}:{line}: " in result.output and reason in result.output, result.output
    assert "nothing was written" in result.output and "Traceback" not in result.output
    assert not project.db.exists()  # checked before the store is even opened
    from_stdin = put(project, "inventory.in", input=content)
    assert from_stdin.exit_code == 1 and f"stdin:{line}: " in from_stdin.output and reason in from_stdin.output


def test_one_invalid_utf8_sequence_at_line_1202_of_1500_writes_nothing(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    lines = [json.dumps({"n": n}).encode() for n in range(1500)]
    lines[1201] = b'{"n": "caf\xe9"}'  # Latin-1, not UTF-8
    source = project.root / "in.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    project.store().append("inventory.in", [{"before": True}])

    result = put(project, "inventory.in", str(source))

    assert result.exit_code == 1
    assert f"error: {source}:1202: not UTF-8: invalid byte 0xe9" in result.output
    assert stored(project, "inventory.in") == ['{"before":true}']


def test_several_bad_lines_are_named_up_to_five(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    source = project.root / "in.ndjson"
    source.write_bytes(b"".join(b"{}\n" if n % 2 else b"nope\n" for n in range(20)))

    result = put(project, "inventory.in", str(source))

    assert result.exit_code == 1
    assert [f"{source}:{n}: not JSON" in result.output for n in (1, 3, 5, 7, 9, 11)] == [True] * 5 + [False]
    assert "stopped after 5 bad lines" in result.output


def test_accepted_lines_are_stored_byte_for_byte_minus_surrounding_blanks(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    lines = [
        b'  {"b":1,  "a":2}\t\r\n',  # CRLF, blanks around
        b"\n",
        b"   \r\n",
        '{ "é" : "\\u00e9", "n": 1.50, "big": 18446744073709551615 }\n'.encode(),  # the largest integer kept
        b'"just a string"\n',
        b"[1,2 , 3]",  # a last line without its newline counts
    ]
    source = project.root / "in.ndjson"
    source.write_bytes(b"".join(lines))

    result = put(project, "inventory.in", str(source), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == 4
    assert stored(project, "inventory.in") == [
        '{"b":1,  "a":2}',
        '{ "é" : "\\u00e9", "n": 1.50, "big": 18446744073709551615 }',
        '"just a string"',
        "[1,2 , 3]",
    ]


def test_empty_input_puts_nothing(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    result = put(project, "inventory.in", "--json", input="\n \n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"queue": "inventory.in", "count": 0, "first": 0, "last": 0}


def test_a_folder_or_a_missing_file_is_a_clear_error(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    for source, why in ((project.root, "Is a directory"), (project.root / "missing.ndjson", "No such file")):
        result = put(project, "inventory.in", str(source))
        assert result.exit_code == 2 and f"cannot read {source}: {why}" in result.output, result.output


def test_tail_json_prints_strict_json_even_for_a_payload_that_is_not(project: Project) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    # What an older version accepted, or a bot's RawJSON: stored text that is not strict JSON.
    store.append("q", [RawJSON('{"a":NaN}'), RawJSON('{"ok":1}'), RawJSON("{broken")])
    store.close()

    result = runner.invoke(app, ["queues", "tail", "q", "--json", "-f", str(project.file)], env={"LEO_STORE": ""})

    assert result.exit_code == 0, result.output

    def strict(text: str) -> object:
        return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} in tail --json output"))

    events = [strict(line) for line in result.stdout.splitlines()]
    assert [event["payload"] for event in events] == [None, {"ok": 1}, None]
    assert events[0]["payload_text"] == '{"a":NaN}' and "NaN" in events[0]["payload_error"]
    assert events[2]["payload_text"] == "{broken" and "payload_error" in events[2]


# -- staging, in process --------------------------------------------------------------------------------------
def test_lines_split_across_reads_and_too_long_lines_are_located(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "_READ_SIZE", 7)
    monkeypatch.setattr(staging, "MAX_LINE_BYTES", 20)
    ok = b'{"n":12345}\n' * 3
    long_line = b'{"s":"' + b"x" * 40 + b'"}\n'

    with stage_lines(io.BytesIO(ok + b'{"last":1}'), "f") as staged:
        assert list(staged.texts()) == ['{"n":12345}'] * 3 + ['{"last":1}']
    with pytest.raises(JSONInputError) as error:
        stage_lines(io.BytesIO(ok + long_line + b"oops\n" + ok), "f")
    assert str(error.value).startswith("f:4: longer than 0 MiB; f:5: not JSON")


def test_a_line_longer_than_the_limit_is_refused_without_being_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "MAX_LINE_BYTES", 1 << 20)
    source = io.BytesIO(b"{}\n" + b"[" + b"1," * (4 << 20) + b"1]\n" + b"{}\n")
    with pytest.raises(JSONInputError, match=r"^f:2: longer than 1 MiB"):
        stage_lines(source, "f")


# -- all or nothing, whatever happens to the process ----------------------------------------------------------
LINES = 400_000


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400,000 lines of ~200 bytes: large enough that SQLite spills the open transaction into
    the WAL file while the put is still writing (what the kill tests wait for)."""
    path = tmp_path_factory.mktemp("big") / "big.ndjson"
    filler = "x" * 180
    with path.open("w") as handle:
        handle.writelines(f'{{"n":{n},"f":"{filler}"}}\n' for n in range(LINES))
    return path


def count_events(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_put_killed_while_writing_leaves_nothing(project: Project, big_input: Path, sig: int) -> None:
    project.write(FILTER_PIPELINE)
    project.store().close()  # an existing store, so its WAL growing means the put is writing
    wal = Path(f"{project.db}-wal")
    env = {**os.environ, "LEO_STORE": ""}
    proc = subprocess.Popen([LEO, "queues", "put", "inventory.in", str(big_input), "-f", str(project.file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # 16 MB of WAL while the transaction is open: well into the writing, well before its end.
        wait_until(lambda: proc.poll() is not None or (wal.exists() and wal.stat().st_size > 16 << 20),
                   timeout=120, interval=0.005, what="the put to be writing")
        assert proc.poll() is None, f"the put ended before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert count_events(project.db) == 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and b"interrupted: nothing was put" in stderr, stderr
    # The store is whole and usable afterwards, positions included.
    done = subprocess.run([LEO, "queues", "put", "inventory.in", "-f", str(project.file), "--json"],
                          input='{"after": 1}\n', capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["first"] == 1 and count_events(project.db) == 1
