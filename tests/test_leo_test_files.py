"""Errors in test files: each class located at the character to fix, worded with the fix and a
did-you-mean where a name is close to one the pipelines file has (never a failing test)."""

from __future__ import annotations

from pathlib import Path

import pytest

import leo_runtime.bots  # noqa: F401  (the built-ins, registered before isolated_imports copies the table)
from leo_runtime.pipetest.spec import Loader, TestFileError

from .pipetest_helpers import Shop

pytestmark = pytest.mark.usefixtures("isolated_imports")

EVENTS = "events: [{object_type: inventory, op: updated, key: A, data: {sku: A, quantity: 1}}]"


def one_test(body: str, expect: str = "inventory.low_stock: {count: 1}", target: str = "low-stock",
             name: str = "t") -> str:
    """A test file of one test: `body` lines (input, steps, mock ...) between target and expect."""
    lines = [f"  - name: {name}", f"    target: {target}"]
    lines += [f"    {line}" for line in body.strip("\n").splitlines()]
    if expect:
        lines += ["    expect:", f"      {expect}"]
    return "tests:\n" + "\n".join(lines) + "\n"


CASES = [
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="low-stok"), "low-stok", 1,
                 "target: no bot 'low-stok' in pipelines.yaml (did you mean 'low-stock'?)", id="bot-id"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="{pipeline: fed}"), "fed", 1,
                 "target: no pipeline 'fed' in pipelines.yaml (did you mean 'feed'?); pipelines: erp, feed",
                 id="pipeline"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="feed"), "feed", 1,
                 "target: no bot 'feed' in pipelines.yaml ('feed' is a pipeline: write target: {pipeline: feed})",
                 id="pipeline-named-as-a-bot"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="{pipelin: feed}"), "{pipelin", 1,
                 "target: unknown field 'pipelin' (did you mean 'pipeline'?); write {pipeline: NAME} for a whole pipeline",
                 id="pipeline-key"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="[low-stock, low-stock]"), "low-stock", 2,
                 "target: bot 'low-stock' is listed twice", id="twice"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", target="42"), "42", 1,
                 "target must be a bot id, a list of bot ids (a chain) or {pipeline: NAME}", id="target-type"),
    pytest.param(one_test(f"mock: {{erp-psh: record}}\ninput: {{{EVENTS}}}"), "erp-psh", 1,
                 "mock: no bot 'erp-psh' in pipelines.yaml (did you mean 'erp-push'?)", id="mock-bot"),
    pytest.param(one_test(f"mock: {{detector: record}}\ninput: {{{EVENTS}}}"), "detector", 1,
                 "mock: bot 'detector' is a source: it is handed nothing to record; give the test its input instead "
                 "(objects, file or events)", id="mock-source"),
    pytest.param(one_test(f"mock: {{erp-push: recrod}}\ninput: {{{EVENTS}}}"), "recrod", 1,
                 "mock.erp-push: must be 'record' (got 'recrod') (did you mean 'record'?)", id="mock-kind"),
    pytest.param(one_test(f"input: {{queue: inventory.change, {EVENTS}}}"), "inventory.change", 1,
                 "no bot of the test reads queue 'inventory.change' (did you mean 'inventory.changes'?)", id="input-queue"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stok: {count: 1}"), "inventory.low_stok", 1,
                 "no queue, bot or webhook 'inventory.low_stok' in pipelines.yaml (did you mean 'inventory.low_stock'?)",
                 id="expect-queue"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="tagger: {count: 1}"), "tagger", 1,
                 "'tagger' is a bot (not in the test): expect the queue it writes ('inventory.tagged'), or mock it "
                 "(mock: {tagger: record}) to expect what it is handed", id="expect-a-bot"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stock: {cont: 1}"), "cont", 1,
                 "unknown field 'cont' in 'expect.inventory.low_stock' (did you mean 'count'?); known fields: count, "
                 "equals, contains, ordered, none, dead_letter, batches, record, error", id="expect-field"),
    pytest.param(one_test(f"imput: {{{EVENTS}}}"), "imput", 1,
                 "unknown field 'imput' (did you mean 'input'?); known fields: name, target, env, mock, input, steps, "
                 "webhooks, expect, now, skip", id="test-field"),
    pytest.param(one_test("input: {objects: [{sku: A}]}"), "{objects", 1,
                 "objects and file go to a change_detector, and the target has none: add one to target, or give events "
                 "(change records) to the queue it writes", id="objects-without-detector"),
    pytest.param(one_test("input: {objects: [{sku: A}], bot: low-stock}", target="[detector, low-stock]"), "low-stock", 2,
                 "bot 'low-stock' is not a change_detector of the file", id="objects-to-a-filter"),
    pytest.param(one_test("input: {file: fixtures/missing.csv}", target="detector"), "fixtures/missing.csv", 1,
                 "no fixture file 'fixtures/missing.csv' (looked for fixtures/missing.csv)", id="fixture-missing"),
    pytest.param(one_test("input: {objects: [sku]}", target="detector"), "sku", 1,
                 "an object must be a mapping of its fields", id="object-not-a-mapping"),
    pytest.param(one_test(f"input: {{{EVENTS}}}\nsteps: [{{{EVENTS}}}]"), "steps", 1,
                 "give either input (one step) or steps (several), not both", id="input-and-steps"),
    pytest.param(one_test(""), "name: t", 1, "the test has no input: add input (events, objects or file) or steps",
                 id="no-input"),
    pytest.param(one_test("steps: [{objects: [{sku: A}], file: x.csv}]", target="detector"), "file", 1,
                 "a step gives one input: objects or file, not both (use two steps)", id="two-inputs"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect=""), "name: t", 1,
                 "the test expects nothing: add expect (a queue, a mocked bot or a batch)", id="expects-nothing"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stock: {none: true, count: 1}"), "none", 1,
                 "inventory.low_stock: none: true expects nothing, so it cannot also expect events", id="none-and-count"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stock: {batches: 1}"), "batches", 1,
                 "inventory.low_stock: batches is for a batcher bot or a test's webhook, not a queue", id="batches-on-a-queue"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stock: {count: 1, equals: []}"), "count", 1,
                 "inventory.low_stock: count is 1 but equals lists 0 events", id="count-and-equals"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="low-stock: {error: x, count: 1}"), "count", 1,
                 "low-stock: error expects the bot to fail; count does not go with it", id="error-and-count"),
    pytest.param(one_test(f"input: {{{EVENTS}}}", expect="inventory.low_stock: {}"), "{}", 1,
                 "inventory.low_stock: expect something: count, equals, contains, none, dead_letter, batches or record",
                 id="empty-expectation"),
    pytest.param(one_test(f"webhooks: {{w: {{object_type: inventry, interval: 5m}}}}\ninput: {{{EVENTS}}}"), "inventry", 1,
                 "webhook 'w': unknown object type 'inventry' (did you mean 'inventory'?)", id="webhook-type"),
    pytest.param(one_test(f"webhooks: {{w: {{object_type: inventory, interval: 5m, query: {{quantity: {{less: 5}}}}}}}}"
                          f"\ninput: {{{EVENTS}}}"), "less", 1,
                 "webhook 'w': field 'quantity': unknown operator 'less' (did you mean 'lt'?)", id="webhook-query"),
    pytest.param(one_test(f"now: yesterday\ninput: {{{EVENTS}}}"), "yesterday", 1, "now: invalid time", id="now"),
]


@pytest.mark.parametrize(("text", "marker", "nth", "message"), CASES)
def test_each_class_of_test_file_error_is_located_and_worded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, marker: str, nth: int, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    shop = Shop(tmp_path)
    path = shop.tests(text)
    with pytest.raises(TestFileError) as info:
        Loader(tmp_path / "pipelines.yaml", {}).load(path)
    assert len(info.value.problems) == 1, "\n".join(map(str, info.value.problems))
    (problem,) = info.value.problems
    assert f"{problem.file.rsplit('/', 1)[-1]}:{problem.line}:{problem.column}" == shop.at(marker, nth)
    assert problem.message.startswith("test 't': ")
    assert problem.message.removeprefix("test 't': ").startswith(message), problem.message


def test_every_problem_of_every_test_is_reported_at_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    text = one_test(f"input: {{{EVENTS}}}", target="low-stok", name="first") + one_test(
        f"input: {{{EVENTS}}}", expect="inventory.lowstock: {count: 1}", name="second").removeprefix("tests:\n")
    with pytest.raises(TestFileError) as info:
        Loader(tmp_path / "pipelines.yaml", {}).load(shop.tests(text))
    assert [(p.line, p.message.split(":")[0]) for p in info.value.problems] == [(4, "test 'first'"), (12, "test 'second'")]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        pytest.param("tests:\n  - name: x\n   target: y\n", (3, 4), "invalid YAML: 'target' is indented 3 spaces",
                     id="indentation"),
        pytest.param("", (1, 1), "the test file is empty: start with 'tests:' and a list of tests", id="empty"),
        pytest.param("- a\n", (1, 1), "the test file is not a mapping: start with 'tests:'", id="not-a-mapping"),
        pytest.param("tests: []\n", (1, 8), "tests: must hold at least 1 item", id="no-tests"),
        pytest.param("pipelines: nowhere.yaml\ntests: [{}]\n", (1, 12), "no pipelines file 'nowhere.yaml'", id="pipelines"),
        pytest.param("tests:\n  - name: a\n    target: low-stock\n    input: {events: []}\n    expect: {x: {count: 0}}\n"
                     "  - name: a\n    target: low-stock\n    input: {events: []}\n    expect: {x: {count: 0}}\n", (6, 11),
                     "test 'a': test name 'a' is used twice (first at line 2)", id="duplicate-name"),
    ],
)
def test_whole_file_problems(tmp_path: Path, text: str, where: tuple[int, int], message: str) -> None:
    Shop(tmp_path)
    path = tmp_path / "x.leo-test.yaml"
    path.write_text(text)
    with pytest.raises(TestFileError) as info:
        Loader(tmp_path / "pipelines.yaml" if "pipelines:" not in text else None, {"ERP_URL": "http://x.invalid/"}).load(path)
    problem = info.value.problems[0]
    assert ((problem.line, problem.column), problem.message[: len(message)]) == (where, message)


def test_a_test_file_is_data_nothing_in_it_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = Shop(tmp_path)
    monkeypatch.setenv("SKU", "from-the-environment")
    path = shop.tests("""
        tests:
          - name: literal
            target: low-stock
            input:
              events: [{object_type: inventory, op: updated, key: "${SKU}", data: {sku: "${SKU}", quantity: 1}}]
            expect:
              inventory.low_stock: {contains: [{key: "${SKU}"}]}
        """)
    case_file = Loader(tmp_path / "pipelines.yaml", {}).load(path)
    (case,) = case_file.cases
    assert case.steps[0].events == [{"object_type": "inventory", "op": "updated", "key": "${SKU}",
                                     "data": {"sku": "${SKU}", "quantity": 1}}]
