"""The `file_reader` source's cursor over real files: long lines, lines cut by a writer, budgets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from leo_runtime.bot import BotContext, RunLimits
from leo_runtime.bots import file_reader
from leo_runtime.bots.file_reader import FileReader


def run(folder: Path, state: dict, records: int = 1000) -> list[str]:
    """One run of the bot: the texts it yields (its state is updated in place, as the runtime commits it)."""
    ctx = BotContext(bot_id="reader", pipeline="p", base_dir=folder, limits=RunLimits(records=records), state=state,
                     logger=logging.getLogger("test.reader"))
    bot = FileReader(FileReader.Settings(path="."), ctx)
    return [raw.text for raw in bot.produce(ctx)]


def test_a_line_over_the_limit_is_refused_even_while_it_is_still_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(file_reader, "MAX_LINE_BYTES", 32)
    data = tmp_path / "a.ndjson"
    data.write_bytes(b'{"n":1}\n{"s":"' + b"x" * 40)  # a long line, its writer not done
    state: dict = {}

    assert run(tmp_path, state) == ['{"n":1}']
    assert state["rejected"]["recent"] == [f"{data}:2: longer than 0 MiB"]

    with data.open("ab") as handle:
        handle.write(b"x" * 40 + b'"}\n{"n":2}\r\n{"n":')  # the long line ends; another starts
    assert run(tmp_path, state) == ['{"n":2}']
    with data.open("ab") as handle:
        handle.write(b"3}\n")
    assert run(tmp_path, state) == ['{"n":3}']
    assert state["rejected"]["count"] == 1 and state["files"]["a.ndjson"]["line"] == 4
    assert "longer than 0 MiB (line skipped)" in caplog.text


def test_a_budget_stops_mid_file_and_the_next_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_text("".join(f'{{"n":{n}}}\n' for n in range(5)) + "oops\n")
    (tmp_path / "b.ndjson").write_text('{"n":5}\n')
    state: dict = {}
    seen = run(tmp_path, state, records=2) + run(tmp_path, state, records=2) + run(tmp_path, state, records=2)
    assert seen == [f'{{"n":{n}}}' for n in range(6)]
    assert run(tmp_path, state) == [] and state["rejected"]["count"] == 1


def test_warnings_are_bounded_per_file_and_run_while_the_count_stays_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.ndjson").write_text("bad\n" * 50 + '{"ok":1}\n')
    state: dict = {}
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path, state) == ['{"ok":1}']
    assert state["rejected"]["count"] == 50 and len(state["rejected"]["recent"]) == file_reader.RECENT_REJECTIONS
    assert caplog.text.count("(line skipped)") == file_reader.WARNINGS_PER_FILE
    assert "40 more line(s) refused this run" in caplog.text
