"""The change_detector bot in a real runtime: a watched folder, a SQLite file, a local HTTP server.

Everything is real: watchdog file events, SQLite files, an HTTP server on loopback. Tests wait
for conditions, never for fixed times.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from typer.testing import CliRunner

from leo_runtime import runner as runner_module
from leo_runtime.cli import app
from leo_runtime.runtime import Runtime

from .conftest import Project, async_wait_until, payloads_of, run_with
from .objects_helpers import assert_objects_agree_with_changes, change_records, live_objects


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "BACKOFF_BASE_SECONDS", 0.02)
    monkeypatch.setattr(runner_module, "BACKOFF_MAX_SECONDS", 0.2)




def detector(source: str, snapshot: str = "full", extra: str = "") -> str:
    return f"""
        version: 1
        object_types:
          inventory: {{key: sku}}
        pipelines:
          inventory:
            bots:
              - id: detector
                use: change_detector
                with: {{object_type: inventory, source: {source}, snapshot: {snapshot}}}
                {extra}
              - id: low-stock
                use: filter
                in: inventory.changes
                with: {{query: {{quantity: {{lt: 5}}}}}}
                out: inventory.low_stock
        """


def last_error(store: Any, bot: str = "detector") -> str:
    info = store.bot(bot)
    return (info.last_error or "") if info else ""


def ops(store: Any) -> list[tuple[str, str, int]]:
    return [(record["key"], record["op"], record["version"]) for record in change_records(store)]


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))


# -- json_dir ----------------------------------------------------------------------------------------
def test_files_dropped_into_a_watched_folder_become_objects_and_change_records(project: Project) -> None:
    folder = project.root / "data" / "inventory"
    folder.mkdir(parents=True)
    project.write(detector("{kind: json_dir, path: data/inventory}", snapshot="partial"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: runtime.runners["detector"].state == "idle", what="the first (empty) read")
        write_json(folder / "nyc.json", [{"sku": "A", "quantity": 3, "warehouse": "NYC"}, {"sku": "B", "quantity": 9}])
        await async_wait_until(lambda: len(live_objects(store)) == 2, what="the .json file")
        (folder / "more.ndjson").write_text('{"sku": "C",  "quantity": 1}\n\n{"sku": 42, "quantity": 7}\n')
        await async_wait_until(lambda: len(live_objects(store)) == 4, what="the .ndjson file")
        (folder / "sheet.csv").write_text("sku,quantity,warehouse\nD,12,LA\n")
        await async_wait_until(lambda: "D" in live_objects(store), what="the .csv file")
        (folder / ".partial.json").write_text("[{")  # hidden: a writer's temp file is never read
        write_json(folder / "nyc.json", [{"sku": "A", "quantity": 2, "warehouse": "NYC"}, {"sku": "B", "quantity": 9}])
        await async_wait_until(lambda: ("A", "updated", 2) in ops(store), what="the changed file")
        await async_wait_until(lambda: len(payloads_of(store, "inventory.low_stock")) == 3, what="the filter")

    run_with(project, body)
    assert live_objects(store) == {
        "A": {"sku": "A", "quantity": 2, "warehouse": "NYC"},
        "B": {"sku": "B", "quantity": 9},
        "C": {"sku": "C", "quantity": 1},
        "42": {"sku": 42, "quantity": 7},
        "D": {"sku": "D", "quantity": "12", "warehouse": "LA"},  # CSV values are text
    }
    assert sorted(ops(store)) == sorted(
        [("A", "created", 1), ("B", "created", 1), ("C", "created", 1), ("42", "created", 1), ("D", "created", 1),
         ("A", "updated", 2)]
    )
    assert store.get_object("inventory", "C").data_json == '{"sku": "C",  "quantity": 1}'  # the line as written
    updated = change_records(store)[-1]
    assert updated["changed_fields"] == ["quantity"] and updated["data"]["quantity"] == 2
    # The filter matched the change records on their data: A (3, then 2) and C (1).
    assert [record["key"] for record in payloads_of(store, "inventory.low_stock")] == ["A", "C", "A"]
    assert last_error(store) == ""
    assert_objects_agree_with_changes(store)


def test_a_file_written_in_two_halves_is_applied_only_when_complete(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    project.write(detector("{kind: json_dir, path: data}"))
    store = project.store()
    items = [{"sku": f"S{n}", "quantity": n} for n in range(50)]
    text = json.dumps(items, indent=1)
    cut = len(text) // 2

    async def body(runtime: Runtime) -> None:
        path = folder / "stock.json"
        with path.open("w") as handle:
            handle.write(text[:cut])
        line = text[:cut].count("\n") + 1
        await async_wait_until(lambda: f"data/stock.json:{line}: not JSON" in last_error(store), what="the half file")
        assert live_objects(store) == {} and change_records(store) == []  # nothing of it applied
        with path.open("a") as handle:
            handle.write(text[cut:])
        await async_wait_until(lambda: len(live_objects(store)) == 50, what="the completed file")
        await async_wait_until(lambda: runtime.runners["detector"].failures == 0)

    run_with(project, body)
    assert [record["op"] for record in change_records(store)] == ["created"] * 50
    assert_objects_agree_with_changes(store)


def test_an_ndjson_file_cut_mid_line_applies_none_of_its_lines(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    project.write(detector("{kind: json_dir, path: data}", snapshot="partial"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        path = folder / "feed.ndjson"
        path.write_text('{"sku": "A", "quantity": 1}\n{"sku": "B", "quantity": 2}\n{"sku": "C", "qua')
        await async_wait_until(lambda: "data/feed.ndjson:3: not JSON" in last_error(store), what="the cut line")
        assert live_objects(store) == {}
        with path.open("a") as handle:
            handle.write('ntity": 3}\n')
        await async_wait_until(lambda: len(live_objects(store)) == 3, what="the completed file")

    run_with(project, body)
    assert_objects_agree_with_changes(store)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.ndjson", '{"sku": "A"}\n{"sku": "B"}\n{"sku": NaN}\n', "data/bad.ndjson:3: NaN and Infinity are not JSON"),
        ("bad.ndjson", '{"sku": "A"}\n{"name": "no key"}\n', "data/bad.ndjson:2: missing key field 'sku'"),
        ("bad.ndjson", '{"sku": "A"}\n[1, 2]\n', "data/bad.ndjson:2: expected a JSON object, got an array"),
        ("bad.json", '{"sku": "A"}', "data/bad.json:1: expected a JSON array of objects, got an object"),
        ("bad.json", '[{"sku": "A"}, {"sku": true}]', "data/bad.json: item 2: key field 'sku' must be a non-empty string"),
        ("bad.json", '\ufeff[{"sku": "A"}]', "data/bad.json:1: starts with a UTF-8 byte order mark"),
        ("bad.csv", "sku,quantity\nA,1\nB\n", "data/bad.csv:3: the row has 1 fields, the header 2"),
        ("bad.csv", "sku,sku\nA,1\n", "data/bad.csv:1: the header must name every column once"),
        ("bad.csv", "name\nA\n", "data/bad.csv:2: missing key field 'sku'"),
        ("dup.ndjson", '{"sku": "A"}\n{"sku": "A", "n": 2}\n', "key 'A' of 'inventory' appears more than once in one full read"),
        ("empty.json", "", "data/empty.json: is empty (still being written?)"),
        ("bad.ndjson", '{"sku": "A", "note": "caf\udce9"}\n', "data/bad.ndjson:1: not UTF-8: invalid byte 0xe9"),
    ],
)
def test_a_malformed_file_is_reported_applies_nothing_and_the_runtime_stays_healthy(
    project: Project, name: str, content: str, message: str
) -> None:
    folder = project.root / "data"
    folder.mkdir()
    (folder / "good.json").write_text('[{"sku": "G", "quantity": 1}]')
    (folder / name).write_bytes(content.encode("utf-8", "surrogateescape"))
    project.write(
        detector("{kind: json_dir, path: data}")
        + """
          other:
            bots:
              - {id: pass, use: filter, in: other.in, out: other.out, with: {query: {}}}
        """
    )
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: message in last_error(store), what=f"the error naming {name}")
        store.append("other.in", [{"n": 1}])
        await async_wait_until(lambda: payloads_of(store, "other.out"), what="another pipeline working meanwhile")
        assert live_objects(store) == {} and change_records(store) == []  # not even good.json: one read, one commit
        (folder / name).unlink()  # fixed (here: removed): the next run applies the folder
        await async_wait_until(lambda: live_objects(store) == {"G": {"sku": "G", "quantity": 1}}, what="recovery")

    run_with(project, body)
    assert "Traceback" not in last_error(store)


def test_a_key_missing_from_a_full_read_is_deleted_and_partial_never_deletes(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    write_json(folder / "a.json", [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    write_json(folder / "c.json", [{"sku": "C", "quantity": 3}])
    project.write(detector("{kind: json_dir, path: data}"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(live_objects(store)) == 3)
        write_json(folder / "a.json", [{"sku": "A", "quantity": 1}])  # B dropped
        await async_wait_until(lambda: ("B", "deleted", 2) in ops(store), what="the delete record")
        (folder / "c.json").unlink()  # a removed file: its keys are gone too
        await async_wait_until(lambda: ("C", "deleted", 2) in ops(store), what="the removed file's keys")
        (folder / "a.json").unlink()  # an empty folder is not an empty snapshot
        await async_wait_until(lambda: store.bot("detector").state.get("files") == {})
        write_json(folder / "b.json", [{"sku": "B", "quantity": 5}])  # a key comes back
        await async_wait_until(lambda: ("B", "created", 3) in ops(store))

    run_with(project, body)
    assert live_objects(store) == {"B": {"sku": "B", "quantity": 5}}  # A: missing from the last full read
    delete = next(record for record in change_records(store) if record["op"] == "deleted" and record["key"] == "C")
    assert delete["data"] == {"sku": "C", "quantity": 3}  # the last known state
    assert_objects_agree_with_changes(store)

    # The same folder under snapshot: partial: files are changes, nothing is ever deleted.
    project.write(detector("{kind: json_dir, path: data}", snapshot="partial").replace("id: detector", "id: partial-detector"))
    write_json(folder / "b.json", [{"sku": "Z", "quantity": 1}])

    async def partial(runtime: Runtime) -> None:
        await async_wait_until(lambda: "Z" in live_objects(store))

    run_with(project, partial)
    assert set(live_objects(store)) == {"B", "Z"}


def test_a_restart_reads_nothing_again(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    write_json(folder / "a.json", [{"sku": "A", "quantity": 1}])
    project.write(detector("{kind: json_dir, path: data}"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: live_objects(store) and runtime.runners["detector"].state == "idle")

    run_with(project, body)
    run_with(project, body)
    assert ops(store) == [("A", "created", 1)]
    assert store.bot("detector").runs == 1  # the second runtime found every file as the state says


# -- sqlite_table -----------------------------------------------------------------------------------------
def test_a_sqlite_table_is_read_in_full_and_deletes_follow_the_table(project: Project) -> None:
    source = sqlite_utils.Database(project.root / "erp.db")
    source["items"].insert_all([{"sku": f"S{n}", "quantity": n, "price": n * 1.5} for n in range(5)], pk="sku")
    project.write(detector("{kind: sqlite_table, path: erp.db, table: items}", extra="schedule: 50ms"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(live_objects(store)) == 5, what="the first read")
        source["items"].update("S1", {"quantity": 100})
        source["items"].delete("S2")
        await async_wait_until(lambda: ("S2", "deleted", 2) in ops(store) and ("S1", "updated", 2) in ops(store))
        runs = store.bot("detector").runs
        await async_wait_until(lambda: runtime.runners["detector"].state == "idle")
        assert store.bot("detector").runs == runs  # an unchanged file is not read again (no commit)

    run_with(project, body)
    assert live_objects(store)["S1"] == {"sku": "S1", "quantity": 100, "price": 1.5}
    assert "S2" not in live_objects(store)
    assert_objects_agree_with_changes(store)


def test_a_sqlite_table_read_incrementally_by_its_updated_column(project: Project) -> None:
    source = sqlite_utils.Database(project.root / "erp.db")
    source["items"].insert_all([{"sku": f"S{n}", "quantity": n, "updated": 100 + n // 2} for n in range(7)], pk="sku")
    project.write(
        detector(
            "{kind: sqlite_table, path: erp.db, table: items, updated_column: updated}",
            snapshot="partial",
            extra="schedule: 50ms\n                batch: {records: 2}",
        )
    )
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(live_objects(store)) == 7, what="every row, two per run")
        source["items"].update("S0", {"quantity": 50, "updated": 200})
        source["items"].delete("S6")  # incremental reads cannot see deletes: nothing happens
        await async_wait_until(lambda: ("S0", "updated", 2) in ops(store))

    run_with(project, body)
    assert store.bot("detector").state["cursor"] == [200, "S0"]
    assert store.bot("detector").runs >= 4  # 7 rows at 2 per run, then the update
    assert len(change_records(store)) == 8 and "S6" in live_objects(store)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{kind: sqlite_table, path: erp.db, table: itemz}", "erp.db: no table 'itemz' (tables: items, blobs)"),
        ("{kind: sqlite_table, path: erp.db, table: items}", "erp.db: table 'items' has no column 'sku' (the key of"),
        ("{kind: sqlite_table, path: nope.db, table: items}", "nope.db: no such SQLite file"),
        ("{kind: sqlite_table, path: erp.db, table: blobs}", "erp.db table blobs, row 1: column 'raw' holds a BLOB"),
    ],
)
def test_sqlite_source_problems_are_clear_errors(project: Project, source: str, message: str) -> None:
    erp = sqlite_utils.Database(project.root / "erp.db")
    erp["items"].insert_all([{"code": "S1"}])
    erp["blobs"].insert_all([{"sku": "S1", "raw": b"\x00\x01"}])
    project.write(detector(source, extra="schedule: 1h"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: message in last_error(store), what=message)

    run_with(project, body)
    assert live_objects(store) == {}


# -- http_poll ----------------------------------------------------------------------------------------------
class Feed:
    """A real HTTP server on loopback serving a JSON array with an ETag."""

    def __init__(self) -> None:
        self.body = b"[]"
        self.status = 200
        self.requests: list[str | None] = []  # the If-None-Match of each request
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append(self.headers.get("If-None-Match"))
                etag = f'"{hash(feed.body) & 0xFFFFFFFF:x}"'
                if feed.status != 200:
                    self.send_response(feed.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/inventory?token=secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, items: list[Any]) -> None:
        self.body = json.dumps(items).encode()


@pytest.fixture
def feed() -> Iterator[Feed]:
    server = Feed()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_http_poll_honours_etags_and_follows_the_feed(project: Project, feed: Feed) -> None:
    feed.serve([{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    project.write(detector(f"{{kind: http_poll, url: '{feed.url}', max_bytes: 1000000}}", extra="schedule: 50ms"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(live_objects(store)) == 2, what="the first poll")
        await async_wait_until(lambda: len(feed.requests) >= 3 and feed.requests[-1] is not None, what="a 304 poll")
        assert store.bot("detector").runs == 1  # 304s commit nothing
        feed.serve([{"sku": "A", "quantity": 7}])  # A changed, B dropped: a full snapshot deletes it
        await async_wait_until(lambda: ("B", "deleted", 2) in ops(store) and ("A", "updated", 2) in ops(store))
        feed.status = 500
        await async_wait_until(lambda: "HTTP 500" in last_error(store), what="the failing poll")
        feed.status = 200
        feed.serve([])  # an empty feed is an outage far more often than an empty catalogue
        await async_wait_until(lambda: "holds no objects" in last_error(store), what="the empty feed refused")
        feed.serve([{"sku": "A", "quantity": 7}, {"sku": "C"}, "not an object"])
        await async_wait_until(lambda: "item 3: expected a JSON object" in last_error(store), what="the bad body")
        assert "C" not in live_objects(store)
        feed.serve([{"sku": "A", "quantity": 7}, {"sku": "C"}] + [{"sku": f"X{n}", "pad": "x" * 100} for n in range(20_000)])
        await async_wait_until(lambda: "larger than max_bytes (1000000)" in last_error(store), what="the huge body")
        feed.serve([{"sku": "A", "quantity": 7}, {"sku": "C"}])
        await async_wait_until(lambda: "C" in live_objects(store), what="recovery")

    run_with(project, body)
    assert live_objects(store) == {"A": {"sku": "A", "quantity": 7}, "C": {"sku": "C"}}
    assert store.bot("detector").state["etag"]
    assert "secret-token" not in json.dumps([last_error(store), store.bot("detector").state])
    assert_objects_agree_with_changes(store)


def test_http_poll_errors_never_show_the_query_string(project: Project) -> None:
    project.write(detector("{kind: http_poll, url: 'http://127.0.0.1:9/x?key=hunter2'}", extra="schedule: 1h"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: "GET http://127.0.0.1:9/x: ConnectError" in last_error(store))

    run_with(project, body)
    assert "hunter2" not in last_error(store)


# -- configuration --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "snapshot", "marker", "message"),
    [
        ("{kind: json_dir, path: data}", "full", "inventry", "unknown object type 'inventry' (did you mean 'inventory'?)"),
        ("{kind: json_dr, path: data}", "full", "{kind: json_dr",
         "source.kind: unknown kind 'json_dr' (did you mean 'json_dir'?); kinds: json_dir, sqlite_table, http_poll"),
        ("{kind: sqlite_table, path: x.db, table: t, updated_column: u}", "full", "{object_type",
         "updated_column reads only changed rows"),
        ("{kind: http_poll, url: 'ftp://x'}", "full", "{kind: http_poll", "must be an http:// or https:// URL"),
        ("{kind: json_dir, path: data, recursive: true}", "full", "recursive", "unknown field 'recursive'"),
        ("{kind: json_dir, path: data}", "sometimes", "{object_type", "snapshot"),
    ],
)
def test_settings_problems_are_located(project: Project, source: str, snapshot: str, marker: str, message: str) -> None:
    text = detector(source, snapshot)
    if marker == "inventry":
        text = text.replace("object_type: inventory", "object_type: inventry")
    project.write(text)
    result = CliRunner().invoke(app, ["validate", "-f", str(project.file)])
    assert result.exit_code == 1
    line = next(i for i, value in enumerate(project.file.read_text().splitlines(), 1) if marker in value)
    assert f"pipelines.yaml:{line}:" in result.output and "bot 'detector'" in result.output
    assert message in result.output, result.output


def test_change_records_go_to_their_own_queue(project: Project) -> None:
    (project.root / "data").mkdir()
    text = detector("{kind: json_dir, path: data}")
    project.write(text.replace("snapshot: full}", "snapshot: full}\n                out: other"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: "change records always go to 'inventory.changes'" in last_error(store))

    run_with(project, body)


def test_two_full_detectors_of_one_type_are_a_located_config_error(project: Project) -> None:
    # Each full read deletes the keys only the other source holds: they would delete each other's
    # keys on every read, so the file is refused; partial ones (or other types) are fine.
    second = """
          inventory-b:
            bots:
              - id: detector-b
                use: change_detector
                with:
                  object_type: inventory
                  source: {kind: json_dir, path: more}
                  snapshot: SNAPSHOT
        """
    base = detector("{kind: json_dir, path: data}").rstrip() + "\n"
    project.write(base + second.replace("SNAPSHOT", "full"))
    result = CliRunner().invoke(app, ["validate", "-f", str(project.file)])
    assert result.exit_code == 1, result.output
    lines = project.file.read_text().splitlines()
    first_line = next(i for i, value in enumerate(lines, 1) if "snapshot: full}" in value)
    line = next(i for i, value in enumerate(lines, 1) if value.strip() == "snapshot: full")
    column = lines[line - 1].index("full") + 1
    assert (f"pipelines.yaml:{line}:{column}: bot 'detector-b': snapshot: full for object type 'inventory' is also set by "
            f"bot 'detector' (line {first_line})") in result.output, result.output
    assert "make one of them snapshot: partial" in result.output
    project.write(base + second.replace("SNAPSHOT", "partial"))
    assert CliRunner().invoke(app, ["validate", "-f", str(project.file)]).exit_code == 0


def test_a_reload_that_changes_the_key_field_restarts_the_detector(project: Project) -> None:
    folder = project.root / "data"
    folder.mkdir()
    write_json(folder / "stock.json", [{"sku": "A", "id": "1", "quantity": 1}])
    project.write(detector("{kind: json_dir, path: data}"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: list(live_objects(store)) == ["A"], what="the first read, keyed by sku")
        before = runtime.runners["detector"]
        project.file.write_text(project.file.read_text().replace("inventory: {key: sku}", "inventory: {key: id}"))
        assert await runtime.reload()
        assert runtime.runners["detector"] is not before, "the detector must pick up the new key field"
        write_json(folder / "stock.json", [{"sku": "A", "id": "1", "quantity": 2}])
        await async_wait_until(lambda: list(live_objects(store)) == ["1"], what="the next read, keyed by id")

    run_with(project, body)
    assert_objects_agree_with_changes(store)


SLOW_SOURCE = '''
import time

from leo_runtime import objects
from leo_runtime.bot import SourceBot


class SlowRead(SourceBot):
    """A full read of 8 pages that takes a while but gets on: a page (the store's unit of
    progress) every 0.6 s; no single step, the final write included, comes near the test's bound."""

    def produce(self, ctx):
        if ctx.state.get("done"):
            return
        ctx.state["done"] = True

        def rows():
            for page in range(8):
                time.sleep(0.6)
                yield from ({"sku": f"K{page}-{n:04d}"} for n in range(2000))

        yield objects.batch("inventory", "sku", rows(), complete=True, source="slow")
'''


def test_a_long_read_that_gets_on_is_never_flagged_stuck(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its bound (batch.seconds plus the margin) is far shorter than the read: only progress
    # (objects compared, then written) keeps it from being flagged stuck.
    monkeypatch.setattr(runner_module, "stuck_after", lambda seconds: 3.0)
    (project.root / "bots").mkdir()
    (project.root / "bots" / "slow.py").write_text(SLOW_SOURCE)
    project.write("""
        version: 1
        object_types:
          inventory: {key: sku}
        pipelines:
          feed:
            bots:
              - {id: slow, use: ./bots/slow.py:SlowRead, out: inventory.changes, schedule: 1h}
        """)
    store = project.store()
    flagged: list[str] = []
    mark_stuck = store.mark_stuck

    async def body(runtime: Runtime) -> None:
        runtime.store.mark_stuck = lambda bot_id, *args: (flagged.append(bot_id), mark_stuck(bot_id, *args))
        await async_wait_until(lambda: len(live_objects(store)) == 16_000, timeout=60, what="the slow read")

    run_with(project, body)
    assert flagged == []
    assert_objects_agree_with_changes(store)


def test_http_poll_reads_an_ndjson_feed_line_by_line(project: Project, feed: Feed) -> None:
    feed.body = b'{"sku": "A", "quantity": 1}\r\n\n{"sku": "B", "quantity": 2}\n'
    project.write(detector(f"{{kind: http_poll, url: '{feed.url}'}}", extra="schedule: 50ms"))
    store = project.store()

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: len(live_objects(store)) == 2, what="the first poll")
        feed.body = b'{"sku": "A", "quantity": 1}\r\n{"sku": "B", "quantity": 3}\n{"sku": "C"}\n'
        await async_wait_until(lambda: "C" in live_objects(store), what="the changed feed")
        feed.body = b'{"sku": "A", "quantity": 1}\n{"sku": "B", quantity: 3}\n'
        await async_wait_until(lambda: "GET http://127.0.0.1" in last_error(store) and ":2: not JSON" in last_error(store),
                               what="the bad line named")

    run_with(project, body)
    assert store.get_object("inventory", "A").data_json == '{"sku": "A", "quantity": 1}'
    assert sorted(ops(store)) == [("A", "created", 1), ("B", "created", 1), ("B", "updated", 2), ("C", "created", 1)]
    assert_objects_agree_with_changes(store)
