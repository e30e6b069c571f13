"""Running tests: each on a bench of its own, its steps in order, then its expectations.

A test's bots are its target (in the order given, or the pipeline's order) and its mocked
bots. Events go to their queue in one append; objects and fixture files go to a change detector
as one complete read of its source. After each step the bots run until none has anything left
to do, then the step's ``wait`` moves the clock on. When the last step is done every interval
passes (each batcher and test webhook seals what it holds), then the expectations are checked.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..botcalls import clip
from ..delivery.webhooks import BOT_PREFIX
from ..errors import LeoError
from .bench import Bench, fed_detector, no_network
from .expect import Miss, Observed, check, jsonable
from .spec import Case, CaseFile, Expect, Loader, Step, TestFileError, discover
from .update import Recorded, updated_text


@dataclass
class Outcome:
    """How one test went."""

    case: Case
    status: str  # passed, failed or skipped
    seconds: float = 0.0
    misses: list[Miss] = field(default_factory=list)
    recorded: list[Recorded] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        line, column = self.case.location()
        return {"name": self.case.name, "file": self.case.file.shown, "line": line, "column": column,
                "status": self.status, "duration_ms": round(self.seconds * 1000, 1),
                "failures": [miss.to_dict() for miss in self.misses]}


@dataclass
class _Mark:
    """Where a step starts: what was there before it (step expectations see only what follows)."""

    position: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)


def run_case(case: Case, *, update: bool = False, root: Path | None = None) -> Outcome:
    """Run one test on a bench of its own; never raises for what its bots do."""
    if case.skip is not None:
        return Outcome(case, "skipped")
    started = time.perf_counter()
    outcome = Outcome(case, "passed")
    try:
        with no_network(), Bench(case.config, start_ms=case.start_ms, root=root) as bench:
            _Run(case, bench, outcome, update).go()
    except LeoError as exc:
        line, column = case.location()
        outcome.misses.append(Miss(case.file.shown, line, column, clip(str(exc))))
    outcome.seconds = time.perf_counter() - started
    if outcome.misses:
        outcome.status = "failed"
    return outcome


class _Run:
    def __init__(self, case: Case, bench: Bench, outcome: Outcome, update: bool) -> None:
        self.case = case
        self.bench = bench
        self.outcome = outcome
        self.update = update
        self.webhook_ids: dict[str, str] = {}

    def go(self) -> None:
        case, bench = self.case, self.bench
        fed = {step.detector for step in case.steps if step.detector}
        for spec in case.bots:
            if spec.kind == "source":
                if spec.id in fed:  # other sources have nothing to read in a test
                    bench.add(fed_detector(spec, bench.objects_folder(spec.id)))
            else:
                bench.add(spec, record=spec.id in case.recorded)
        for name, webhook in case.webhooks.items():
            self.webhook_ids[name] = bench.add_webhook(name, webhook.object_type, webhook.query,
                                                       round(webhook.interval * 1000), webhook.mode)
        for bot in bench.bots:
            bot.start()
        for step in case.steps:
            mark = self._mark()
            self._hand_over(step)
            bench.settle()
            if step.wait_ms:
                bench.advance(step.wait_ms)
            self._check(step.expect, mark)
        bench.pass_intervals(list(self._batch_ids().values()))
        self._check(case.expect, _Mark())
        expected = {expect.name for expect in case.expect if expect.kind == "error"}
        for bot in [*bench.bots, *bench.sources]:
            if bot.error is not None and bot.id not in expected:
                line, column = case.location(("target",))
                error = bot.error.replace("{BOT_ID: record}", f"{{{bot.id}: record}}")  # bench.no_network's advice
                self.outcome.misses.insert(0, Miss(case.file.shown, line, column, f"bot '{bot.id}' failed: {error}"))

    def _hand_over(self, step: Step) -> None:
        bench = self.bench
        if step.events is not None and step.queue is not None:
            bench.put(step.queue, jsonable(step.events))
        elif step.objects is not None and step.detector is not None:
            content = b"".join(orjson.dumps(jsonable(item)) + b"\n" for item in step.objects)
            bench.feed(step.detector, f"step-{step.index + 1}.ndjson", content, rename=self._object_line(step))
        elif step.file is not None and step.detector is not None:
            shown = _shown(step.file)
            bench.feed(step.detector, f"step-{step.index + 1}{step.file.suffix.lower()}", step.file.read_bytes(),
                       rename=lambda match: shown + (f":{match[1]}" if match[1] else ""))

    def _object_line(self, step: Step) -> Callable[[Any], str]:
        """Line N of the objects' file is the step's object N: name it where the test has it."""
        def rename(match: Any) -> str:
            doc = self.case.file.doc
            if not match[1]:
                return f"{self.case.file.shown}:{':'.join(map(str, doc.value_position((*step.path, 'objects'))))}"
            line, column = doc.value_position((*step.path, "objects", int(match[1]) - 1))
            return f"{self.case.file.shown}:{line}:{column}"
        return rename

    def _mark(self) -> _Mark:
        bench = self.bench
        return _Mark(bench.store.last_position(), {bot.id: len(bot.calls) for bot in bench.bots},
                     {webhook: len(bench.batches(webhook)) for webhook in self._batch_ids().values()})

    def _batch_ids(self) -> dict[str, str]:
        ids = {bot.id: BOT_PREFIX + bot.id for bot in self.bench.bots if bot.spec.cls.name == "batcher"}
        ids.update(self.webhook_ids)
        return ids

    def _observe(self, expect: Expect, mark: _Mark) -> Observed:
        bench = self.bench
        if expect.kind == "error":
            bot = next((bot for bot in bench.bots if bot.id == expect.name), None)  # a source not fed never ran
            return Observed([], error=bot.error if bot is not None else None)
        if expect.kind == "calls":
            return Observed(bench.bot(expect.name).calls[mark.calls.get(expect.name, 0):])
        if expect.kind == "batches":
            webhook = self._batch_ids()[expect.name]
            batches = bench.batches(webhook)[mark.batches.get(webhook, 0):]
            return Observed([record for _, records in batches for record in records], batches=len(batches))
        events = bench.events(expect.name, mark.position)
        letters = bench.dead_letters(expect.name) if expect.spec.dead_letter else {}
        return Observed([event.payload for event in events], [letters.get(event.seq) for event in events])

    def _check(self, expectations: Sequence[Expect], mark: _Mark) -> None:
        for expect in expectations:
            observed = self._observe(expect, mark)
            if self.update and expect.spec.record:
                self.outcome.recorded.append(Recorded(expect, observed.items))
                continue
            self.outcome.misses.extend(check(self.case, expect, observed))


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class Session:
    """A run of `leo test`: the files found, then each test's outcome as it comes."""

    files: list[CaseFile] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for outcome in self.outcomes:
            counts[outcome.status] += 1
        return counts


def load_files(paths: Sequence[Path], loader: Loader) -> list[CaseFile]:
    """Every test file read and checked; `TestFileError` holds every problem of every file."""
    files: list[CaseFile] = []
    problems = []
    for path in paths:
        try:
            files.append(loader.load(path))
        except TestFileError as exc:
            if not exc.problems:
                raise
            problems.extend(exc.problems)
    if problems:
        raise TestFileError(problems=problems)
    return files


def run_files(
    files: Iterable[CaseFile],
    *,
    update: bool = False,
    on_file: Callable[[CaseFile], None] = lambda _: None,
    on_outcome: Callable[[Outcome], None] = lambda _: None,
) -> Session:
    """Run every test of `files`, telling `on_file` and `on_outcome` as it goes; with `update`,
    write the recorded expectations back into their files."""
    session = Session()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="leo-test-") as root:  # every test's store, removed at the end
        for case_file in files:
            _run_file(session, case_file, Path(root), update, on_file, on_outcome)
    session.seconds = time.perf_counter() - started
    return session


def _run_file(session: Session, case_file: CaseFile, root: Path, update: bool,
              on_file: Callable[[CaseFile], None], on_outcome: Callable[[Outcome], None]) -> None:
    session.files.append(case_file)
    on_file(case_file)
    recorded: list[Recorded] = []
    for case in case_file.cases:
        outcome = run_case(case, update=update, root=root)
        session.outcomes.append(outcome)
        recorded.extend(outcome.recorded)
        on_outcome(outcome)
    if update and recorded:
        text = updated_text(case_file.text, case_file.doc, recorded)
        if text != case_file.text:
            _write(case_file.path, text)
            session.updated.append(case_file.shown)


def _write(path: Path, text: str) -> None:
    """Replace the file in one step (a crash leaves the old or the new text, never half)."""
    temporary = path.with_name(f".{path.name}.leo-update")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


__all__ = ["Loader", "Outcome", "Session", "discover", "load_files", "run_case", "run_files"]
