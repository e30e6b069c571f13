"""`leo test`: test files run against real pipelines on temporary stores, every expectation kind
passing and failing (located, both sides shown), the exit codes, --json, --junit and --update.

The bundled example and the scaffold run as real subprocesses; the rest runs the CLI in this
process (`Shop`), on real files, real bots and a real SQLite store per test.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

import leo_runtime.bots  # noqa: F401  (the built-ins, registered before isolated_imports copies the table)

from .conftest import REPO, leo
from .pipetest_helpers import Shop

pytestmark = pytest.mark.usefixtures("isolated_imports")


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shop:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEO_PIPELINES", raising=False)
    return Shop(tmp_path)


def change(key: str, quantity: int, **data: object) -> str:
    """A change record of inventory as a YAML flow mapping."""
    fields = ", ".join(f"{name}: {json.dumps(value)}" for name, value in {"sku": key, "quantity": quantity, **data}.items())
    return f"{{object_type: inventory, op: updated, key: {key}, data: {{{fields}}}}}"


# -- the project's own tests, as an integrator runs them ------------------------------------------
def test_the_bundled_example_passes_its_own_tests() -> None:
    result = leo("test", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pipelines.leo-test.yaml (testing pipelines.yaml)" in result.stdout
    assert re.search(r"^6 tests: 6 passed, 0 failed in [\d.]+ s$", result.stdout, re.M), result.stdout


def test_the_scaffold_passes_its_own_tests_and_touches_no_store(tmp_path: Path) -> None:
    created = leo("init", str(tmp_path / "p"))
    assert created.returncode == 0, created.stderr
    assert "leo test" in created.stdout
    result = leo("test", cwd=tmp_path / "p")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^6 tests: 6 passed, 0 failed", result.stdout, re.M)
    assert not (tmp_path / "p" / "leo.db").exists()  # tests run on temporary stores only


def test_a_failing_test_prints_the_diff_and_where_the_expectation_is(tmp_path: Path) -> None:
    assert leo("init", str(tmp_path / "p")).returncode == 0
    tests = tmp_path / "p" / "pipelines.leo-test.yaml"
    text = tests.read_text().replace("priority: urgent}", "priority: normal}", 1)
    tests.write_text(text)
    result = leo("test", cwd=tmp_path / "p")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = text.splitlines()
    line = next(number for number, value in enumerate(lines, 1) if value.strip().startswith("equals:  ") and "exact" in value)
    column = lines[line - 1].index("equals") + 1
    assert "  FAIL  large open orders are tagged by priority" in result.stdout
    assert f"pipelines.leo-test.yaml:{line}:{column}: orders.prioritized: the events differ from equals" in result.stdout
    assert '        -{"po_number": "PO-1", "priority": "normal", "status": "open", "total": 7200}' in result.stdout
    assert '        +{"po_number": "PO-1", "priority": "urgent", "status": "open", "total": 7200}' in result.stdout
    assert re.search(r"^6 tests: 5 passed, 1 failed", result.stdout, re.M)


def test_a_broken_test_file_is_located_and_never_looks_like_a_failing_test(tmp_path: Path) -> None:
    assert leo("init", str(tmp_path / "p")).returncode == 0
    tests = tmp_path / "p" / "pipelines.leo-test.yaml"
    tests.write_text(tests.read_text().replace("target: low-stock ", "target: low-stok ", 1))
    result = leo("test", cwd=tmp_path / "p")
    assert result.returncode == 2
    assert result.stdout == ""  # no test ran: nothing reads PASS or FAIL
    line = next(n for n, value in enumerate(tests.read_text().splitlines(), 1) if "low-stok " in value)
    assert result.stderr.startswith(
        f"pipelines.leo-test.yaml:{line}:13: test 'a low-stock item in New York goes to inventory.low_stock': target: "
        "no bot 'low-stok' in pipelines.yaml (did you mean 'low-stock'?)"
    )


# -- every expectation kind ---------------------------------------------------------------------
ALL_KINDS = f"""
tests:
  - name: count, contains and none
    target: low-stock
    input:
      events: [{change("A", 1)}, {change("B", 50)}, {change("C", 4)}]
    expect:
      inventory.low_stock: {{count: 2, contains: [{{key: C}}, {{key: A, data: {{quantity: 1}}}}]}}
      inventory.other: {{none: true}}
  - name: contains in order
    target: low-stock
    input:
      events: [{change("A", 1)}, {change("C", 4)}]
    expect:
      inventory.low_stock: {{ordered: true, contains: [{{key: A}}, {{key: C}}]}}
  - name: equals in order and in any order
    target: [low-stock, tagger]
    input:
      events: [{change("A", 1)}, {change("B", 2)}]
    expect:
      inventory.tagged:
        equals: [{{sku: A, tag: plain, seen: 1}}, {{sku: B, tag: plain, seen: 2}}]
      inventory.low_stock:
        ordered: false
        equals: [{change("B", 2)}, {change("A", 1)}]
  - name: a dead letter after three failed runs
    target: [low-stock, tagger]
    input:
      events: [{change("A", 1)}, {change("B", 2, boom=True)}, {change("C", 3)}]
    expect:
      inventory.tagged: {{equals: [{{sku: A, tag: plain, seen: 1}}, {{sku: C, tag: plain, seen: 2}}]}}
      inventory.tag_failed:
        count: 1
        dead_letter: {{bot: tagger, failures: 3, error: "cannot tag B"}}
        contains: [{{key: B}}]
  - name: a mocked sink records what it is handed
    target: [low-stock, tagger]
    mock: {{erp-push: record}}
    input:
      events: [{change("A", 1)}]
    expect:
      erp-push: {{equals: [{{sku: A, tag: plain, seen: 1}}]}}
  - name: a batcher's batch and the notification a webhook_sender would have sent
    target: {{pipeline: erp}}
    input:
      events: [{change("A", 1)}, {change("A", 2)}, {change("B", 3)}]
    expect:
      erp-batches: {{batches: 1, count: 2, contains: [{{key: A, data: {{quantity: 2}}}}, {{key: B}}]}}
      erp-notify: {{count: 1, contains: [{{type: batch.ready, data: {{records: 2}}}}]}}
  - name: a partner webhook's batches for a query, interval and mode
    target: detector
    webhooks:
      low: {{object_type: inventory, query: {{quantity: {{lt: 5}}}}, interval: 1m}}
      everything: {{object_type: inventory, interval: 1h, mode: all}}
    steps:
      - objects: [{{sku: A, quantity: 1}}, {{sku: B, quantity: 9}}]
      - wait: 1m
        expect:
          low: {{batches: 1, equals: [{{object_type: inventory, key: A, op: created, version: 1,
                changed_at: "2026-01-01T00:00:00.000Z", changed_fields: [quantity, sku], data: {{sku: A, quantity: 1}}}}]}}
          everything: {{batches: 0}}
      - objects: [{{sku: A, quantity: 2}}]
    expect:
      low: {{batches: 2, count: 2}}
      everything: {{batches: 1, count: 1, contains: [{{key: A, op: snapshot, data: {{quantity: 2}}}}]}}
  - name: a bot's expected error
    target: [detector, low-stock]
    input:
      objects: [{{sku: A, quantity: lots}}]
    expect:
      detector: {{error: "field 'quantity': 'lots' is not an integer"}}
      inventory.low_stock: {{none: true}}
  - name: the pipelines' variables per test
    target: [low-stock, tagger]
    env: {{LABEL: special}}
    input:
      events: [{change("A", 1)}]
    expect:
      inventory.tagged: {{contains: [{{tag: special}}]}}
"""


def test_every_expectation_kind_passes_when_it_holds(shop: Shop) -> None:
    shop.tests(ALL_KINDS)
    result = shop.run()
    assert result.exit_code == 0, result.output
    assert result.output.count("  PASS  ") == 9
    assert "9 tests: 9 passed, 0 failed" in result.output


MISSES = [
    pytest.param(
        "inventory.low_stock: {count: 3}", "count: 3", 1,
        "inventory.low_stock: expected 3 events, got 1", id="count",
    ),
    pytest.param(
        "inventory.low_stock: {none: true}", "none: true", 1,
        "inventory.low_stock: expected nothing, got 1 event", id="none",
    ),
    pytest.param(
        "inventory.low_stock: {contains: [{key: A}, {key: Z}]}", "{key: Z}", 1,
        'inventory.low_stock: no event contains {"key": "Z"}', id="contains",
    ),
    pytest.param(
        "inventory.low_stock: {contains: [{key: A}, {key: A}]}", "{key: A}", 2,
        'inventory.low_stock: no event contains {"key": "A"}', id="contains-needs-distinct-events",
    ),
    pytest.param(
        "inventory.tagged: {equals: [{sku: A, tag: plain, seen: 2}]}", "equals", 1,
        "inventory.tagged: the events differ from equals", id="equals",
    ),
    pytest.param(
        "inventory.tagged: {ordered: false, equals: []}", "equals", 1,
        "inventory.tagged: the events differ from equals (in any order)", id="equals-any-order",
    ),
    pytest.param(
        "inventory.tag_failed: {dead_letter: true}", "dead_letter", 1,
        "inventory.tag_failed: nothing was set aside", id="dead-letter",
    ),
    pytest.param(
        "erp-push: {count: 2}", "count: 2", 1, "erp-push: expected 2 calls, got 1", id="recorder",
    ),
    pytest.param(
        "tagger: {error: boom}", "error", 1,
        "tagger: expected the bot to fail with an error holding 'boom'; it did not fail", id="error",
    ),
    pytest.param(
        "inventory.tagged: {record: true}", "record", 1,
        "inventory.tagged: no events recorded yet: run `leo test --update` to write the actual ones into equals",
        id="record-not-written-yet",
    ),
]


@pytest.mark.parametrize(("expectation", "marker", "nth", "message"), MISSES)
def test_an_expectation_that_does_not_hold_is_located_with_both_sides(
    shop: Shop, expectation: str, marker: str, nth: int, message: str
) -> None:
    shop.tests(f"""
        tests:
          - name: one item runs low
            target: [low-stock, tagger]
            mock: {{erp-push: record}}
            input:
              events: [{change("A", 1)}]
            expect:
              {expectation}
        """)
    result = shop.run()
    assert result.exit_code == 1, result.output
    assert f"    {shop.at(marker, nth, after='expect:')}: {message}" in result.output
    assert "  FAIL  one item runs low" in result.output


def test_a_failure_shows_expected_and_actual_events(shop: Shop) -> None:
    shop.tests(f"""
        tests:
          - name: low stock
            target: low-stock
            input:
              events: [{change("A", 1)}, {change("B", 2)}]
            expect:
              inventory.low_stock: {{contains: [{{key: Z}}]}}
        """)
    output = shop.run().output
    assert output.splitlines()[2:9] == [
        f'    {shop.at("{key: Z}")}: inventory.low_stock: no event contains {{"key": "Z"}}',
        "      expected (1):",
        '        1. {"key": "Z"}',
        "      actual (2):",
        '        1. {"data": {"quantity": 1, "sku": "A"}, "key": "A", "object_type": "inventory", "op": "updated"}',
        '        2. {"data": {"quantity": 2, "sku": "B"}, "key": "B", "object_type": "inventory", "op": "updated"}',
        "",
    ]


def test_a_bot_that_reaches_the_network_fails_its_test_until_mocked(shop: Shop) -> None:
    shop.tests(f"""
        tests:
          - name: the sink runs for real
            target: [low-stock, tagger, erp-push]
            input:
              events: [{change("A", 1)}]
            expect:
              inventory.tagged: {{count: 1}}
        """)
    result = shop.run()
    assert result.exit_code == 1
    assert f"    {shop.at('target')}: bot 'erp-push' failed: failed on event inventory.tagged@3: ConnectError: leo test " \
           "touches no network (a bot tried to reach 'erp.example.com:80'): mock it with mock: {erp-push: record}" \
           in result.output
    shop.tests(shop.texts["shop.leo-test.yaml"].replace("env: {ERP_URL: http://erp.invalid/hook}\n", "").replace(
        "    target:", "    mock: {erp-push: record}\n    target:"))
    assert shop.run().exit_code == 0


def test_an_object_that_does_not_cast_is_named_where_the_test_wrote_it(shop: Shop) -> None:
    (shop.root / "fixtures").mkdir()
    (shop.root / "fixtures" / "stock.csv").write_text("sku,quantity\nA,1\nB,some\n")
    shop.tests("""
        tests:
          - name: rows
            target: detector
            input:
              objects:
                - {sku: A, quantity: "2"}
                - {sku: B, quantity: many}
            expect:
              inventory.changes: {count: 2}
          - name: a fixture
            target: detector
            input: {file: fixtures/stock.csv}
            expect:
              inventory.changes: {count: 2}
        """)
    output = shop.run().output
    assert (f"{shop.at('target')}: bot 'detector' failed: {shop.at('{sku: B')}: field 'quantity': 'many' is not an "
            "integer (object_types.inventory.fields says integer); fix the input, or change the field's type") in output
    assert f"{shop.at('target', nth=2)}: bot 'detector' failed: fixtures/stock.csv:3: field 'quantity': 'some' is not" in output


def test_the_test_clock_stands_still_so_outputs_repeat(shop: Shop) -> None:
    shop.tests("""
        tests:
          - name: a change record's time is the test's
            target: detector
            now: 2030-05-01T12:00:00Z
            input:
              objects: [{sku: A, quantity: 1}]
            expect:
              inventory.changes:
                equals:
                  - {object_type: inventory, key: A, op: created, version: 1, changed_at: "2030-05-01T12:00:00.000Z",
                     changed_fields: [quantity, sku], data: {sku: A, quantity: 1}}
        """)
    assert shop.run().exit_code == 0
    assert shop.run().exit_code == 0


def test_steps_expect_what_each_step_wrote(shop: Shop) -> None:
    shop.tests("""
        tests:
          - name: a delete under snapshot full
            target: detector
            steps:
              - objects: [{sku: A, quantity: 1}, {sku: B, quantity: 2}]
                expect:
                  inventory.changes: {count: 2, contains: [{op: created, key: A}, {op: created, key: B}]}
              - objects: [{sku: A, quantity: 1}]
                expect:
                  inventory.changes: {equals: []}
              - objects: [{sku: A, quantity: 7}]
                expect:
                  inventory.changes: {count: 1, contains: [{op: updated, key: A, version: 2}]}
            expect:
              inventory.changes: {count: 3, contains: [{op: deleted, key: B}]}
        """)
    result = shop.run()
    assert result.exit_code == 1  # step 2 deletes B: its expectation says nothing was written
    assert f"{shop.at('equals: []')}: inventory.changes: the events differ from equals" in result.output
    assert "inventory.changes: expected 3 events, got 4" in result.output
    assert result.output.count(".leo-test.yaml:") == 2


# -- output for CI --------------------------------------------------------------------------------
TWO_TESTS = f"""
tests:
  - name: passes
    target: low-stock
    input:
      events: [{change("A", 1)}]
    expect:
      inventory.low_stock: {{count: 1}}
  - name: fails
    target: low-stock
    input:
      events: [{change("A", 1)}]
    expect:
      inventory.low_stock: {{count: 5}}
  - name: skipped
    skip: not today
    target: low-stock
    input:
      events: [{change("A", 1)}]
    expect:
      inventory.low_stock: {{count: 5}}
"""


def test_json_output(shop: Shop) -> None:
    shop.tests(TWO_TESTS)
    report = shop.json()
    assert report["passed"] is False
    assert report["summary"] == {**report["summary"], "passed": 1, "failed": 1, "skipped": 1, "total": 3}
    (file,) = report["files"]
    assert file["file"] == "shop.leo-test.yaml" and file["pipelines"] == "pipelines.yaml"
    passed, failed, skipped = file["tests"]
    assert (passed["status"], failed["status"], skipped["status"]) == ("passed", "failed", "skipped")
    (failure,) = failed["failures"]
    assert f"{failure['file']}:{failure['line']}:{failure['column']}" == shop.at("count: 5")
    assert failure["message"] == "inventory.low_stock: expected 5 events, got 1"
    assert failure["expected"] is None and failure["actual"] == [json.loads(json.dumps(
        {"object_type": "inventory", "op": "updated", "key": "A", "data": {"sku": "A", "quantity": 1}}))]


def test_junit_xml_has_a_testcase_per_test(shop: Shop, tmp_path: Path) -> None:
    shop.tests(TWO_TESTS)
    result = shop.run("--junit", str(tmp_path / "report.xml"))
    assert result.exit_code == 1
    suite = ElementTree.parse(tmp_path / "report.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == ["passes", "fails", "skipped"]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == f"{shop.at('count: 5')}: inventory.low_stock: expected 5 events, got 1"
    assert cases[2].find("skipped") is not None and cases[0].find("failure") is None


def test_junit_and_json_for_an_invalid_test_file(shop: Shop, tmp_path: Path) -> None:
    shop.tests("tests:\n  - name: x\n    target: low-stock\n    imput: {events: []}\n")
    result = shop.run("--json", "--junit", str(tmp_path / "report.xml"))
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert [f"{p['file']}:{p['line']}:{p['column']}" for p in report["problems"]] == [shop.at("imput")]
    error = ElementTree.parse(tmp_path / "report.xml").getroot().find("testsuite/testcase/error")
    assert error is not None and "did you mean 'input'?" in (error.get("message") or "")


# -- --update -----------------------------------------------------------------------------------------
def test_update_writes_the_actual_events_into_expectations_marked_record(shop: Shop) -> None:
    path = shop.tests(f"""
        tests:
          # the first test records its filter's output
          - name: recorded
            target: [low-stock, tagger]
            input:
              events: [{change("A", 1)}, {change("B", 2)}]
            expect:
              inventory.tagged: {{record: true, count: 9}}   # count goes: equals says it all
              inventory.low_stock:
                record: true
                ordered: false
                equals: [{{stale: true}}]
              inventory.changes: {{count: 2}}   # not marked: left alone
        """)
    before = path.read_text()
    result = shop.run("--update")
    assert result.exit_code == 0, result.output
    assert "updated shop.leo-test.yaml: review the change (git diff) before you commit it" in result.output
    head, _ = before.split("      inventory.tagged:")
    assert path.read_text() == head + (
        "      inventory.tagged:\n"
        "        record: true\n"
        "        equals:\n"
        '          - {"sku": "A", "tag": "plain", "seen": 1}\n'
        '          - {"sku": "B", "tag": "plain", "seen": 2}   # count goes: equals says it all\n'
        "      inventory.low_stock:\n"
        "        record: true\n"
        "        ordered: false\n"
        "        equals:\n"
        f"          - {json.dumps(json.loads(_json_change('A', 1)))}\n"
        f"          - {json.dumps(json.loads(_json_change('B', 2)))}\n"
        "      inventory.changes: {count: 2}   # not marked: left alone\n"
    )
    again = shop.run()
    assert again.exit_code == 0, again.output


def _json_change(key: str, quantity: int) -> str:
    return json.dumps({"object_type": "inventory", "op": "updated", "key": key, "data": {"sku": key, "quantity": quantity}})


# -- finding test files -----------------------------------------------------------------------------
def test_test_files_are_found_under_the_project_but_not_in_other_projects(shop: Shop) -> None:
    body = f"""
        tests:
          - name: low
            target: low-stock
            input: {{events: [{change("A", 1)}]}}
            expect:
              inventory.low_stock: {{count: 1}}
        """
    shop.tests(body, name="a.leo-test.yaml")
    shop.tests(body, name="tests/b.leo-test.yaml")
    shop.tests("tests: [nonsense]", name=".hidden/c.leo-test.yaml")
    shop.tests("tests: [nonsense]", name="other-project/d.leo-test.yaml")
    (shop.root / "other-project" / "pipelines.yaml").write_text("version: 1\n")
    report = shop.json()
    assert [file["file"] for file in report["files"]] == ["a.leo-test.yaml", "tests/b.leo-test.yaml"]
    assert {file["pipelines"] for file in report["files"]} == {"pipelines.yaml"}
    only = shop.json("tests")
    assert [file["file"] for file in only["files"]] == ["tests/b.leo-test.yaml"]


def test_no_test_files_is_bad_usage(shop: Shop) -> None:
    result = shop.run()
    assert result.exit_code == 2
    assert "no test files (*.leo-test.yaml) in ." in result.output
    assert shop.run("missing.leo-test.yaml").exit_code == 2


def test_an_invalid_pipelines_file_is_its_own_error_exit_1(shop: Shop) -> None:
    shop.tests(f"""
        tests:
          - name: low
            target: low-stock
            input: {{events: [{change("A", 1)}]}}
            expect:
              inventory.low_stock: {{count: 1}}
        """)
    pipelines = shop.root / "pipelines.yaml"
    pipelines.write_text(pipelines.read_text().replace("{lt: 5}", "{less: 5}"))
    result = shop.run()
    assert result.exit_code == 1
    assert "pipelines.yaml:13:35: bot 'low-stock': field 'quantity': unknown operator 'less' (did you mean 'lt'?)" \
        in result.output
    assert "PASS" not in result.output and "FAIL" not in result.output
