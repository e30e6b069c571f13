"""`leo_runtime.testing.BotHarness`: a bot author's few lines to run `process` on payloads from
pytest, on a temporary store, through the runtime's own run (state kept, errors raised, dead
letters after on_error's count), with no hand-built `Event`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import leo_runtime.bots  # noqa: F401  (the built-ins)
from leo_runtime.errors import BotError
from leo_runtime.testing import BotHarness

from .conftest import CUSTOM_BOTS, REPO

pytestmark = pytest.mark.usefixtures("isolated_imports")


def custom(tmp_path: Path) -> ModuleType:
    path = tmp_path / "custom_bots.py"
    path.write_text(CUSTOM_BOTS)
    spec = importlib.util.spec_from_file_location("custom_bots_for_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_process_returns_what_the_bot_wrote_and_keeps_its_state(tmp_path: Path) -> None:
    bots = custom(tmp_path)
    with BotHarness(bots.Enrich, {"tag": "vip"}) as bot:
        assert bot.process([{"id": 1}, {"id": 2, "skip": True}]) == [{"id": 1, "tag": "vip"}]
        assert bot.state == {"seen": 1}
        assert bot.process([{"id": 3, "audit": True}]) == [{"id": 3, "audit": True, "tag": "vip"}]
        assert bot.state == {"seen": 2}  # committed with the run, kept from one call to the next
        assert bot.written == {"out": [{"id": 3, "audit": True, "tag": "vip"}], "audit": [{"audited": 3}]}
        assert bot.outputs() == [{"id": 1, "tag": "vip"}, {"id": 3, "audit": True, "tag": "vip"}]


def test_an_exception_of_the_bot_comes_out_of_process_with_its_cause(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(
        "from leo_runtime import Bot\n"
        "class Boom(Bot):\n"
        "    def process(self, events, ctx):\n"
        "        for event in events:\n"
        "            if event.payload.get('bad'):\n"
        "                raise KeyError('sku')\n"
        "            yield event\n"
    )
    spec = importlib.util.spec_from_file_location("boom_for_harness", tmp_path / "boom.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with BotHarness(module.Boom) as bot:
        with pytest.raises(BotError) as info:
            bot.process([{"ok": 1}, {"bad": True}])
        assert str(info.value) == "bot 'Boom' failed: failed on event in@2: KeyError: 'sku'"
        assert isinstance(info.value.__cause__.__cause__, KeyError)  # type: ignore[union-attr]
        assert bot.outputs() == []  # the run did not commit: nothing written, the checkpoint stays

    with BotHarness(module.Boom, on_error={"dead_letter": "failed", "after": 2}) as bot:
        assert bot.process([{"ok": 1}, {"bad": True}, {"ok": 2}]) == [{"ok": 1}, {"ok": 2}]
        (letter,) = bot.dead_letters
        assert (letter.queue, letter.source_queue, letter.failures) == ("failed", "in", 2)
        assert letter.error == "failed on event in@2: KeyError: 'sku'"


def test_a_bot_from_the_pipelines_file_as_it_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with BotHarness.from_file("leo_runtime/scaffold/pipelines.yaml", "priority-tagger") as bot:
        record = {"object_type": "order", "op": "created", "key": "PO-1", "data": {"po_number": "PO-1", "total": 9000}}
        assert bot.process([record]) == [{"po_number": "PO-1", "total": 9000, "priority": "urgent"}]
    with pytest.raises(BotError, match="no bot 'nope'"):
        BotHarness.from_file("leo_runtime/scaffold/pipelines.yaml", "nope")


def test_the_harness_leaves_nothing_behind(tmp_path: Path) -> None:
    bots = custom(tmp_path)
    bot = BotHarness(bots.Enrich)
    folder = bot._bench.dir
    assert folder.exists()
    bot.close()
    assert not folder.exists()
