"""A test file (``*.leo-test.yaml``) read and checked against the pipelines it tests.

Everything wrong in a test file is found before any test runs, and reported like a problem of
pipelines.yaml: ``FILE:LINE:COL: message``, a misspelled bot id, queue, pipeline or field with a
did-you-mean. A test file's values are data: nothing in it is taken from the environment (its
``env:`` sets variables for the pipelines file instead, per file and per test).

The shape (README, "Testing pipelines")::

    pipelines: pipelines.yaml        # optional: default -f, else the nearest pipelines.yaml
    env: {ERP_WEBHOOK_URL: http://erp.invalid/hook}
    tests:
      - name: low stock goes to the ERP queue
        target: low-stock            # a bot id, a list of bot ids (a chain) or {pipeline: NAME}
        env: {LOW: "5"}              # ${VAR}s of pipelines.yaml, for this test
        mock: {erp-push: record}     # bots replaced by a recorder of what they are handed
        input: {queue: inventory.changes, events: [...]}   # or objects: [...] / file: FIXTURE
        steps: [{objects: [...]}, {objects: [...]}, {wait: 5m}]   # instead of input
        webhooks: {acme: {object_type: inventory, query: {...}, interval: 5m, mode: changes}}
        expect:
          inventory.low_stock: {count: 1, contains: [{data: {sku: A-1}}]}
          erp-push: {equals: [...], ordered: false}
          acme: {batches: 1, contains: [{key: A-1}]}
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import DEFAULT_FILE, BotSpec, Config, load_config
from ..config.loader import read_pipelines_text, validation_problems
from ..config.models import Duration, Name, TimeText
from ..errors import ConfigError, Problem, QueryError
from ..query import Query
from ..safetext import shown
from ..timeutil import parse_time
from ..yaml_loader import YamlDocument, capped, load_yaml
from . import TEST_FILE_SUFFIX

DEFAULT_START = "2026-01-01T00:00:00Z"
"""Where a test's clock starts unless it says ``now:`` (fixed, so outputs repeat)."""

OBJECT_SUFFIXES = (".json", ".ndjson", ".jsonl", ".csv")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Scalar = str | int | float | bool


class DeadLetterSpec(_Model):
    """What a dead-letter expectation checks of each event set aside."""

    bot: str | None = Field(None, description="the bot that set it aside")
    failures: int | None = Field(None, ge=1, description="after how many failed runs in a row")
    error: str | None = Field(None, description="text the error holds")


class Expectation(_Model):
    """What a test expects of a queue, of a recorder's calls or of a batcher's or webhook's batches."""

    count: int | None = Field(None, ge=0, description="exactly this many")
    equals: list[Any] | None = Field(None, description="exactly these payloads (in this order unless ordered: false)")
    contains: list[Any] | None = Field(None, description="each a subset of some payload (any order unless ordered: true)")
    ordered: bool | None = Field(None, description="whether equals/contains hold in the order listed")
    none: bool | None = Field(None, description="true: nothing at all")
    dead_letter: bool | DeadLetterSpec | None = Field(None, description="every event here was set aside after failures")
    batches: int | None = Field(None, ge=0, description="batchers and webhooks: how many batches were sealed")
    record: bool = Field(False, description="leo test --update writes the actual payloads into equals")
    error: str | None = Field(None, description="a bot of the test: it fails, with an error holding this text")


class InputSpec(_Model):
    """What a test (or one of its steps) hands the bots."""

    queue: Name | None = Field(None, description="where events go (default: the queue the first target reads)")
    events: list[Any] | None = Field(None, description="payloads appended to queue")
    objects: list[Any] | None = Field(None, description="objects a change detector reads (one complete read)")
    file: str | None = Field(None, description="a fixture file of objects (.json, .ndjson, .csv), relative to the test file")
    bot: Name | None = Field(None, description="the change detector that reads objects or file (default: the only one)")


class StepSpec(InputSpec):
    """One step of a test: input, then time moving on, then what this step wrote."""

    wait: Duration | None = Field(None, description="move the test's clock on this long (intervals pass, batches seal)")
    expect: dict[str, Expectation] = Field(default_factory=dict, description="what this step wrote")


class WebhookSpec(_Model):
    """A partner webhook the test registers: its batches can be expected like a queue."""

    object_type: Name
    query: dict[str, Any] | None = None
    interval: Duration
    mode: Literal["changes", "all"] = "changes"


class CaseSpec(_Model):
    """One test."""

    name: str = Field(min_length=1)
    target: Any = Field(description="a bot id, a list of bot ids (a chain) or {pipeline: NAME}")
    env: dict[str, Scalar] = Field(default_factory=dict)
    mock: dict[str, Literal["record"]] = Field(default_factory=dict)
    input: InputSpec | None = None
    steps: list[StepSpec] | None = Field(None, min_length=1)
    webhooks: dict[Name, WebhookSpec] = Field(default_factory=dict)
    expect: dict[str, Expectation] = Field(default_factory=dict)
    now: TimeText | None = Field(None, description="where the test's clock starts (RFC 3339)")
    skip: bool | str = False


class CaseFileSpec(_Model):
    """A whole ``*.leo-test.yaml`` (each test is validated on its own, as a `CaseSpec`)."""

    pipelines: str | None = Field(None, description="the pipelines file tested, relative to this file")
    env: dict[str, Scalar] = Field(default_factory=dict)
    tests: list[dict[str, Any]] = Field(min_length=1, description="the tests")


# -- what a checked file becomes ----------------------------------------------------------------
ExpectKind = Literal["queue", "calls", "batches", "error"]


@dataclass
class Expect:
    """One checked expectation: what it is about (``kind``: a queue, a recorder's calls, the
    batches of a batcher bot or of a test's webhook), the spec and where it is written."""

    name: str
    kind: ExpectKind
    spec: Expectation
    path: tuple


@dataclass
class Step:
    """One checked step: events for a queue, or objects (rows or a fixture) for a detector."""

    index: int
    path: tuple
    queue: str | None = None
    events: list[Any] | None = None
    objects: list[Any] | None = None
    file: Path | None = None
    detector: str | None = None
    wait_ms: int = 0
    expect: list[Expect] = field(default_factory=list)


@dataclass
class Case:
    """One checked test, ready to run."""

    file: CaseFile
    index: int
    name: str
    config: Config
    bots: list[BotSpec]  # what runs, in order (target first, then mocked bots)
    recorded: set[str]
    webhooks: dict[str, WebhookSpec]
    steps: list[Step]
    expect: list[Expect]
    start_ms: int
    skip: str | None = None

    @property
    def path(self) -> tuple:
        return ("tests", self.index)

    def location(self, path: Sequence[Any] = (), at: str = "key") -> tuple[int, int]:
        """(line, column) of `path` inside this test (its `- name:` entry when empty)."""
        doc = self.file.doc
        full = (*self.path, *path) if path else (*self.path, "name")
        return doc.key_position(full) if at == "key" else doc.value_position(full)


@dataclass
class CaseFile:
    """A test file, read and checked."""

    path: Path
    shown: str
    text: str
    doc: YamlDocument
    pipelines: Path
    cases: list[Case] = field(default_factory=list)


class TestFileError(ConfigError):
    """A test file is invalid: `problems` locates each problem (``leo test`` exits 2)."""

    __test__ = False  # not a pytest class


# -- loading ------------------------------------------------------------------------------------
class Loader:
    """Reads test files; keeps each pipelines file loaded once per environment."""

    def __init__(self, pipelines: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.explicit_pipelines = pipelines
        self.environ = dict(os.environ if environ is None else environ)
        self._configs: dict[tuple[Path, tuple[tuple[str, str], ...]], Config] = {}

    def config(self, pipelines: Path, env: Mapping[str, str]) -> Config:
        """The pipelines file loaded with `env` added to the environment (ConfigError if invalid)."""
        key = (pipelines, tuple(sorted(env.items())))
        config = self._configs.get(key)
        if config is None:
            config = load_config(pipelines, env={**self.environ, **env}, display_name=shown_path(pipelines))
            self._configs[key] = config
        return config

    def load(self, path: Path) -> CaseFile:
        """Read and check one test file. Raises `TestFileError` (every problem located) or
        `ConfigError` (the pipelines file itself is invalid)."""
        shown = shown_path(path)
        text = _read(path, shown)
        try:
            doc = load_yaml(text, shown, interpolate=False)
        except ConfigError as exc:
            raise TestFileError(problems=exc.problems) from None
        if not isinstance(doc.data, dict):
            what = "empty" if doc.data is None else "not a mapping"
            raise TestFileError(problems=[doc.problem((), f"the test file is {what}: start with 'tests:' and a list of tests")])
        try:
            model = CaseFileSpec.model_validate(doc.data)
        except ValidationError as exc:
            raise TestFileError(problems=capped(validation_problems(doc, exc, CaseFileSpec))) from None
        pipelines = self._pipelines_of(path, model, doc)
        case_file = CaseFile(path, shown, text, doc, pipelines)
        checker = _Checker(self, case_file, model)
        checker.run()
        if checker.problems:
            raise TestFileError(problems=capped(checker.problems))
        return case_file

    def _pipelines_of(self, path: Path, model: CaseFileSpec, doc: YamlDocument) -> Path:
        """The pipelines file a test file tests: its ``pipelines:``, else ``-f``, else the
        nearest pipelines.yaml in its folder or above, else ./pipelines.yaml."""
        if model.pipelines is not None:
            chosen = (path.parent / model.pipelines).absolute()
            if not chosen.is_file():
                raise TestFileError(problems=[doc.problem(("pipelines",), f"no pipelines file {model.pipelines!r} "
                                                          f"(looked for {shown_path(chosen)})", at="value")])
            return chosen
        if self.explicit_pipelines is not None:
            return self.explicit_pipelines.absolute()
        return nearest_pipelines(path) or Path(DEFAULT_FILE).absolute()


def nearest_pipelines(path: Path) -> Path | None:
    """The pipelines.yaml in `path`'s folder or the closest folder above it."""
    for folder in path.absolute().parents:
        candidate = folder / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    return None


def _read(path: Path, shown: str) -> str:
    """A test file's text, read as bounded and strictly as pipelines.yaml is."""
    try:
        return read_pipelines_text(path, shown)
    except ConfigError as exc:
        if exc.problems:
            raise TestFileError(problems=exc.problems) from None
        raise TestFileError(f"{shown}: cannot read the test file ({exc})") from None


def shown_path(path: Path) -> str:
    """A path as messages show it: relative to the current folder when inside it."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def did_you_mean(name: str, candidates: Sequence[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _env_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- checking -----------------------------------------------------------------------------------
class _Checker:
    """Checks a test file against the pipelines it tests and builds its `Case`s."""

    def __init__(self, loader: Loader, case_file: CaseFile, model: CaseFileSpec) -> None:
        self.loader = loader
        self.file = case_file
        self.model = model
        self.doc = case_file.doc
        self.problems: list[Problem] = []
        self.label = ""  # the test being checked, leading its messages

    def error(self, path: Sequence[Any], message: str, *, at: str = "key") -> None:
        self.problems.append(self.doc.problem(tuple(path), f"{self.label}: {message}" if self.label else message, at=at))

    def run(self) -> None:
        file_env = {name: _env_text(value) for name, value in self.model.env.items()}
        seen: dict[str, int] = {}
        for index, raw in enumerate(self.model.tests):
            where = ("tests", index)
            name = raw.get("name")
            label = f"test {shown(name)}" if isinstance(name, str) else f"test #{index + 1}"
            self.label = label
            try:
                spec = CaseSpec.model_validate(raw)
            except ValidationError as exc:
                self.problems.extend(validation_problems(self.doc, exc, CaseSpec, where, label=label))
                continue
            if spec.name in seen:
                self.error((*where, "name"), f"test name {spec.name!r} is used twice (first at line {seen[spec.name]})",
                           at="value")
            else:
                seen[spec.name] = self.doc.key_position((*where, "name"))[0]
            env = {**file_env, **{name: _env_text(value) for name, value in spec.env.items()}}
            config = self.loader.config(self.file.pipelines, env)  # a ConfigError goes up as is
            case = self._case(index, spec, config)
            if case is not None:
                self.file.cases.append(case)

    def _case(self, index: int, spec: CaseSpec, config: Config) -> Case | None:
        where: tuple = ("tests", index)
        before = len(self.problems)
        by_id = {bot.id: bot for bot in config.bots}
        targets = self._targets(where, spec.target, config, by_id)
        for bot_id in spec.mock:
            if bot_id not in by_id:
                self.error((*where, "mock", bot_id), f"mock: no bot '{bot_id}' in {config.path.name}"
                           f"{did_you_mean(bot_id, list(by_id))}")
            elif by_id[bot_id].kind == "source":
                self.error((*where, "mock", bot_id), f"mock: bot '{bot_id}' is a source: it is handed nothing to "
                           "record; give the test its input instead (objects, file or events)")
        if targets is None:
            return None
        run_ids = list(targets) + [bot.id for bot in config.bots if bot.id in spec.mock and bot.id not in targets]
        bots = [by_id[bot_id] for bot_id in run_ids if bot_id in by_id]
        recorded = {bot.id for bot in bots if bot.id in spec.mock or _acts_outside(bot)}
        webhooks = self._webhooks(where, spec, config)
        if spec.input is not None and spec.steps is not None:
            self.error((*where, "steps"), "give either input (one step) or steps (several), not both")
        raw_steps: list[tuple[tuple, InputSpec]]
        if spec.steps is not None:
            raw_steps = [((*where, "steps", number), step) for number, step in enumerate(spec.steps)]
        elif spec.input is not None:
            raw_steps = [((*where, "input"), spec.input)]
        else:
            self.error((*where, "name"), "the test has no input: add input (events, objects or file) or steps")
            raw_steps = []
        steps = [self._step(number, path, step, bots, recorded, webhooks, config)
                 for number, (path, step) in enumerate(raw_steps)]
        expect = self._expectations((*where, "expect"), spec.expect, bots, recorded, webhooks, config)
        if not spec.expect and not any(step.expect for step in spec.steps or ()):
            self.error((*where, "name"), "the test expects nothing: add expect (a queue, a mocked bot or a batch)")
        start = spec.now or DEFAULT_START
        try:
            start_ms = parse_time(start)
        except ValueError as exc:
            self.error((*where, "now"), f"now: {exc}", at="value")
            start_ms = 0
        if len(self.problems) != before:
            return None
        skip = (spec.skip if isinstance(spec.skip, str) else "skipped") if spec.skip else None
        return Case(self.file, index, spec.name, config, bots, recorded, webhooks,
                    [step for step in steps if step is not None], expect, start_ms, skip)

    def _targets(self, where: tuple, target: Any, config: Config, by_id: Mapping[str, BotSpec]) -> list[str] | None:
        path = (*where, "target")
        if target is None:
            self.error(path, "target must be a bot id, a list of bot ids (a chain) or {pipeline: NAME}", at="value")
            return None
        if isinstance(target, dict):
            if set(target) != {"pipeline"} or not isinstance(target.get("pipeline"), str):
                extra = sorted(str(key) for key in target if key != "pipeline")
                hint = f"unknown field '{extra[0]}'{did_you_mean(extra[0], ['pipeline'])}; " if extra else ""
                self.error(path, f"target: {hint}write {{pipeline: NAME}} for a whole pipeline", at="value")
                return None
            name = target["pipeline"]
            if name not in config.model.pipelines:
                self.error((*path, "pipeline"), f"target: no pipeline '{name}' in {config.path.name}"
                           f"{did_you_mean(name, list(config.model.pipelines))}; pipelines: "
                           f"{', '.join(sorted(config.model.pipelines)) or 'none'}", at="value")
                return None
            return [bot.id for bot in config.bots_of(name)]
        names = [target] if isinstance(target, str) else target
        if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
            self.error(path, "target must be a bot id, a list of bot ids (a chain) or {pipeline: NAME}", at="value")
            return None
        ok = True
        for number, name in enumerate(names):
            at = path if isinstance(target, str) else (*path, number)
            if name not in by_id:
                hint = did_you_mean(name, list(by_id))
                if not hint and name in config.model.pipelines:
                    hint = f" ('{name}' is a pipeline: write target: {{pipeline: {name}}})"
                self.error(at, f"target: no bot '{name}' in {config.path.name}{hint}", at="value")
                ok = False
            elif names.index(name) != number:
                self.error(at, f"target: bot '{name}' is listed twice", at="value")
                ok = False
        return names if ok else None

    def _webhooks(self, where: tuple, spec: CaseSpec, config: Config) -> dict[str, WebhookSpec]:
        declared = config.model.object_types
        for name, webhook in spec.webhooks.items():
            path = (*where, "webhooks", name)
            if webhook.object_type not in declared:
                self.error((*path, "object_type"), f"webhook '{name}': unknown object type '{webhook.object_type}'"
                           f"{did_you_mean(webhook.object_type, list(declared))}", at="value")
            try:
                Query.compile(webhook.query)
            except QueryError as exc:
                self.error((*path, "query", *exc.path), f"webhook '{name}': {exc}",
                           at="key" if exc.path else "value")
        return dict(spec.webhooks)

    def _step(self, number: int, path: tuple, step: InputSpec, bots: list[BotSpec], recorded: set[str],
              webhooks: Mapping[str, WebhookSpec], config: Config) -> Step | None:
        given = [name for name in ("events", "objects", "file") if getattr(step, name) is not None]
        wait = getattr(step, "wait", None)
        if len(given) > 1:
            self.error((*path, given[1]), f"a step gives one input: {given[0]} or {given[1]}, not both (use two steps)")
            return None
        result = Step(number, path, wait_ms=round((wait or 0) * 1000))
        if not given and wait is None:
            self.error(path, "give this step its input: events (with queue), objects or file (or wait)", at="value")
            return None
        if given == ["events"]:
            result.events = step.events
            result.queue = self._queue(path, step.queue, bots, config)
        elif given:
            if step.queue is not None:
                self.error((*path, "queue"), "queue is for events; objects and file go to a change detector (bot:)")
            result.detector = self._detector(path, step.bot, bots, config)
            if step.objects is not None:
                result.objects = step.objects
                for item_number, item in enumerate(step.objects):
                    if not isinstance(item, dict):
                        self.error((*path, "objects", item_number), "an object must be a mapping of its fields", at="value")
            else:
                result.file = self._fixture(path, step.file or "")
        elif step.bot is not None or step.queue is not None:
            self.error((*path, "bot" if step.bot is not None else "queue"), "nothing to hand over: add events, objects or file")
        if isinstance(step, StepSpec):
            result.expect = self._expectations((*path, "expect"), step.expect, bots, recorded, webhooks, config)
        return result

    def _queue(self, path: tuple, queue: str | None, bots: list[BotSpec], config: Config) -> str | None:
        readers = [bot for bot in bots if bot.in_queue]
        if queue is None:
            if not readers:
                self.error((*path, "events"), "events need a queue, and no bot of the target reads one: add queue: NAME")
                return None
            return readers[0].in_queue
        if not any(bot.in_queue == queue for bot in readers):
            read = sorted({bot.in_queue for bot in readers if bot.in_queue})
            hint = did_you_mean(queue, read) or (f"; the target reads {', '.join(read)}" if read else "")
            self.error((*path, "queue"), f"no bot of the test reads queue '{queue}'{hint}", at="value")
            return None
        return queue

    def _detector(self, path: tuple, bot_id: str | None, bots: list[BotSpec], config: Config) -> str | None:
        detectors = [bot for bot in bots if _is_detector(bot)]
        if bot_id is not None:
            if any(bot.id == bot_id for bot in detectors):
                return bot_id
            others = [bot.id for bot in config.bots if _is_detector(bot)]
            why = "is not in the target" if bot_id in others else "is not a change_detector of the file"
            self.error((*path, "bot"), f"bot '{bot_id}' {why}{did_you_mean(bot_id, others)}", at="value")
            return None
        if len(detectors) == 1:
            return detectors[0].id
        if not detectors:
            self.error(path, "objects and file go to a change_detector, and the target has none: add one to target, "
                       "or give events (change records) to the queue it writes", at="value")
        else:
            names = ", ".join(bot.id for bot in detectors)
            self.error(path, f"the target has several change detectors ({names}): say which one reads these with bot: ID",
                       at="value")
        return None

    def _fixture(self, path: tuple, name: str) -> Path | None:
        fixture = (self.file.path.parent / name).absolute()
        if not fixture.is_file():
            self.error((*path, "file"), f"no fixture file {name!r} (looked for {shown_path(fixture)})", at="value")
            return None
        if fixture.suffix.lower() not in OBJECT_SUFFIXES:
            self.error((*path, "file"), f"a fixture of objects is a {', '.join(OBJECT_SUFFIXES)} file, not {name!r}",
                       at="value")
            return None
        return fixture

    def _expectations(self, path: tuple, expect: Mapping[str, Expectation], bots: list[BotSpec], recorded: set[str],
                      webhooks: Mapping[str, WebhookSpec], config: Config) -> list[Expect]:
        batchers = {bot.id for bot in bots if _is_batcher(bot) and bot.id not in recorded}
        known_queues = _queues_of(config)
        file_bots = {bot.id for bot in config.bots}
        result = []
        run_ids = {bot.id for bot in bots}
        for name, spec in expect.items():
            where = (*path, name)
            kind: ExpectKind
            if spec.error is not None:
                if name not in run_ids:
                    self.error(where, f"error is what a bot of the test fails with, and '{name}' is not one"
                               f"{did_you_mean(name, sorted(run_ids))}")
                    continue
                others = sorted(spec.model_fields_set - {"error"})
                if others:
                    self.error((*where, others[0]), f"{name}: error expects the bot to fail; {others[0]} does not go with it")
                    continue
                result.append(Expect(name, "error", spec, where))
                continue
            if name in recorded:
                kind = "calls"
            elif name in batchers or name in webhooks:
                kind = "batches"
            elif name in file_bots and name not in known_queues:
                what = "not in the test" if name not in {bot.id for bot in bots} else "not mocked"
                outputs = next((bot.out_queue for bot in config.bots if bot.id == name and bot.out_queue), None)
                fix = f"expect the queue it writes ('{outputs}'), or " if outputs else ""
                self.error(where, f"'{name}' is a bot ({what}): {fix}mock it (mock: {{{name}: record}}) to expect what "
                           "it is handed")
                continue
            else:
                kind = "queue"
                if name not in known_queues:
                    hint = did_you_mean(name, sorted(known_queues | file_bots | set(webhooks)), cutoff=0.8)
                    if hint:  # close to a name of the file: a typo, not a queue only a custom bot writes
                        self.error(where, f"no queue, bot or webhook '{name}' in {config.path.name}{hint}")
                        continue
            self._check_expectation(where, name, kind, spec)
            result.append(Expect(name, kind, spec, where))
        return result

    def _check_expectation(self, where: tuple, name: str, kind: ExpectKind, spec: Expectation) -> None:
        if spec.none and (spec.count or spec.equals or spec.contains):
            self.error((*where, "none"), f"{name}: none: true expects nothing, so it cannot also expect events")
        if spec.batches is not None and kind != "batches":
            self.error((*where, "batches"), f"{name}: batches is for a batcher bot or a test's webhook, not a "
                       f"{'queue' if kind == 'queue' else 'mocked bot'}")
        if spec.dead_letter is not None and kind != "queue":
            self.error((*where, "dead_letter"), f"{name}: dead_letter is for the dead-letter queue a bot's on_error names")
        if spec.ordered is not None and spec.equals is None and spec.contains is None and not spec.record:
            self.error((*where, "ordered"), f"{name}: ordered applies to equals or contains; add one of them")
        if spec.count is not None and spec.equals is not None and spec.count != len(spec.equals):
            self.error((*where, "count"), f"{name}: count is {spec.count} but equals lists {len(spec.equals)} events")
        if not spec.model_fields_set - {"ordered"}:
            self.error(where, f"{name}: expect something: count, equals, contains, none, dead_letter, batches or record",
                       at="value")


def _is_detector(bot: BotSpec) -> bool:
    return bot.cls.name == "change_detector"


def _is_batcher(bot: BotSpec) -> bool:
    return bot.cls.name == "batcher"


def _acts_outside(bot: BotSpec) -> bool:
    """Built-in bots that would reach outside (HTTP): always recorded in a test, never run."""
    return bot.cls.name == "webhook_sender"


def _queues_of(config: Config) -> set[str]:
    queues = {f"{name}.changes" for name in config.model.object_types}
    for bot in config.bots:
        queues.update(queue for queue in (bot.in_queue, bot.out_queue) if queue)
        if bot.config.on_error is not None:
            queues.add(bot.config.on_error.dead_letter)
    return queues


def discover(roots: Sequence[Path], *, skip_projects: bool = True) -> list[Path]:
    """Every test file under `roots` (files are taken as given), sorted. Hidden folders,
    virtualenvs and ``node_modules`` are skipped; with `skip_projects`, so are sub-folders
    holding a pipelines.yaml of their own (another project: run `leo test` there)."""
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
            continue
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(
                name for name in dirs
                if not name.startswith(".") and name not in ("node_modules", "__pycache__", "site-packages")
                and not (here / name / "pyvenv.cfg").exists()
                and not (skip_projects and (here / name / DEFAULT_FILE).is_file())
            )
            found.extend(here / name for name in sorted(files) if name.endswith(TEST_FILE_SUFFIX))
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.absolute(), path)
    return list(unique.values())
