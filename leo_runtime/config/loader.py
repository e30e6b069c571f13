"""Loading pipelines.yaml into a `Config`, every problem located as ``FILE:LINE:COL: message``.

`load_config` reads the file with positions kept (`yaml_loader`), validates it with the models
(each bot's ``with:`` against that bot's own `Settings`), checks the graph (duplicate bot ids and
cycles are errors, a queue that is read but never written is a warning) and raises one
`ConfigError` holding every problem.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..bot import Bot, BotSettings, RunLimits, registered_bots
from ..botcalls import reraise_operator_interrupt
from ..errors import BotError, ConfigError, ConfigFileMissing, InputError, Problem
from ..fieldtypes import query_type_problems
from ..query import Query
from ..registry import BotRegistry
from ..safetext import shown
from ..when import BOT_START_FORMS, forms_text, parse_when
from ..yaml_loader import MAX_FILE_SIZE, Unset, YamlDocument, capped, load_yaml
from .models import NAME_PATTERN, NAME_RULE, BotConfig, PipelinesFile
from .specs import BotSpec, Config, Schedule


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    registry: BotRegistry | None = None,
    display_name: str | None = None,
    import_bots: bool = True,
) -> Config:
    """Load and validate a pipelines file; raise ConfigError with every located problem.

    ``import_bots=False`` (for the commands that run no bots: they need the store URL and the
    names) imports no bot code beyond the built-ins: a custom or plugin bot becomes a stand-in
    whose ``with:`` is not checked and whose kind is read from the YAML (``in`` and ``out``:
    processor, ``in``: sink, else source). An environment variable that is not set is then a
    warning, not an error, unless it is in the store URL or a name (a pipeline's, a bot's id,
    ``use``, ``in``, ``out``, an object type): a bot with one in its ``with:`` becomes a
    stand-in too, and any other setting holding one keeps its default.

    The file is read through symlinks but its own place (made absolute, symlinks kept) is the
    project folder: with ``pipelines.yaml -> ..data/pipelines.yaml`` (a Kubernetes ConfigMap) or
    a symlink into a config repository, relative paths stay next to the link. A file that is
    not there or not a file raises `ConfigFileMissing` (bad usage for the CLI).
    """
    file_path = Path(os.path.abspath(path))
    shown_name = display_name or str(path)
    text = read_pipelines_text(file_path, shown_name)
    return parse_config(
        text, file_path, env=env, registry=registry, display_name=shown_name, import_bots=import_bots
    )


def read_pipelines_text(path: Path, shown_name: str) -> str:
    """A pipelines file's text: UTF-8 (a BOM is allowed), at most MAX_FILE_SIZE bytes (read
    bounded: ``-f /dev/zero`` is an error, not a hang). Raises `ConfigFileMissing` or
    `ConfigError` naming `shown_name`."""
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit: a device or a pipe (``-f /dev/zero``) is bounded too.
            raw = handle.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigFileMissing(
                f"{shown_name}: the symlink points to {os.readlink(path)}, which does not exist"
            ) from None
        raise ConfigFileMissing(f"{shown_name}: file not found (create one with `leo init`, or pass -f FILE)") from None
    except IsADirectoryError:
        raise ConfigFileMissing(f"{shown_name}: is a directory, not a pipelines file (pass -f FILE)") from None
    except NotADirectoryError:
        raise ConfigFileMissing(f"{shown_name}: file not found (a part of the path is not a folder)") from None
    except OSError as exc:
        raise ConfigError(f"{shown_name}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_SIZE:
        raise ConfigError(
            problems=[Problem(shown_name, 1, 1, f"the file is too big (more than {MAX_FILE_SIZE:,} bytes)")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, exc.start) + 1 : exc.start].decode("utf-8", "replace")) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise ConfigError(problems=[Problem(shown_name, line, column, message)]) from None
    return text.removeprefix("\ufeff")


def parse_config(
    text: str,
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    registry: BotRegistry | None = None,
    display_name: str | None = None,
    import_bots: bool = True,
) -> Config:
    """Validate pipelines.yaml text; `path` locates relative paths (store, custom bots, sources)."""
    document = load_yaml(text, display_name or str(path), env=env, unset="error" if import_bots else "warn")
    checker = _Checker(document, path, registry or BotRegistry(), import_bots=import_bots)
    config = checker.run()
    config.env = env
    config.text = text
    return config


def validation_problems(
    document: YamlDocument, exc: ValidationError, model: type[BaseModel], prefix: tuple = (), label: str | None = None
) -> list[Problem]:
    """The located problems of `exc` (`model` validated over the data at `prefix` of
    `document`), worded as pipelines.yaml's own are (unknown fields with a did-you-mean, missing
    fields, wrong types) and led by `label`: for the project's other YAML files (test files)."""
    checker = _Checker(document, Path(document.filename), None, import_bots=False)
    checker._report(exc, model, prefix, label=label, relative_to=prefix, inside=())
    return checker.problems


class _Checker:
    def __init__(
        self, document: YamlDocument, path: Path, registry: BotRegistry | None, *, import_bots: bool = True
    ) -> None:
        self.doc = document
        self.path = path
        self.registry = registry
        self.import_bots = import_bots
        self.problems: list[Problem] = list(document.warnings)
        self.unchecked: set[tuple] = set()  # bots whose `with:` names an unset variable (import_bots=False)

    def error(self, path: Sequence[str | int], message: str, *, at: str = "key") -> None:
        self.problems.append(self.doc.problem(tuple(path), message, at=at))

    def quoted(self, path: Sequence[str | int], value: Any) -> str:
        """How a message quotes the value at `path`: shortened, and for a value taken from the
        environment its template (``'${API_TOKEN}'``), never the value itself."""
        template = self.doc.template(tuple(path))
        return shown(template if template is not None else value)

    def hide(self, path: Sequence[str | int], message: str, value: Any) -> str:
        """`message` (written by a validator that quotes `value`) with the value at `path`
        replaced by its template when it was taken from the environment."""
        template = self.doc.template(tuple(path))
        if template is None or not isinstance(value, str) or not value:
            return message
        message = message.replace(shown(value), shown(template)).replace(repr(value), shown(template))
        if len(value) >= 4:  # a bare short value ("5") would also match unrelated text
            message = message.replace(value, template)
        return message

    def origin(self, path: Sequence[str | int]) -> str:
        """`` (from ${VAR})`` for a value interpolated from the environment, else nothing."""
        return self.doc.origin(tuple(path))

    def warn(self, path: Sequence[str | int], message: str) -> None:
        self.problems.append(self.doc.problem(tuple(path), message, severity="warning"))

    def run(self) -> Config:
        data = self.doc.data
        if data is None:
            raise ConfigError(problems=[self.doc.problem((), "the file is empty: start with 'version: 1'")])
        if not isinstance(data, dict):
            raise ConfigError(problems=[self.doc.problem((), "the file must be a mapping (start with 'version: 1')")])
        self._unset_variables(data)
        model: PipelinesFile | None = None
        try:
            model = PipelinesFile.model_validate(data)
        except ValidationError as exc:
            self._report(exc, PipelinesFile, ())
        if model is not None and model.server.public_url is None and model.server.listens_everywhere:
            self.warn(("server", "host"), f"server.host {model.server.host!r} listens on every interface: set "
                      "server.public_url, the base of the URLs handed to partners (leo run refuses to start without it)")
        specs = self._bots(data)
        self._duplicate_ids(data)
        self._cycles(specs)
        self._exclusive_claims(specs)
        if not self._errors():
            # Only now: a bot dropped for an error would make the queue it writes look unwritten.
            self._unwritten_queues(data, specs)
            if model is not None:
                self._typed_queries(model, specs)
        errors = self._errors()
        self.problems.sort(key=lambda p: (p.line, p.column))
        if errors or model is None:
            raise ConfigError(problems=capped(self.problems))
        return Config(self.path, model, specs, self.doc, [p for p in self.problems if p.severity == "warning"])

    def _unset_variables(self, data: dict[str, Any]) -> None:
        """Without bots to run (``import_bots=False``), what an unset ``${VAR}`` touches: in
        the store URL or a name it stays an error; a bot's ``with:`` is not checked; any other
        setting keeps its default (its warning is already among the problems)."""
        for path in [path for path, _ in _unset_scalars(data, ())]:
            if path[0] in ("version", "store", "object_types") or (path[0] == "pipelines" and len(path) <= 3) or (
                len(path) == 5 and path[0] == "pipelines" and path[2] == "bots" and path[4] in _NAME_KEYS
            ):
                line = self.doc.value_position(path)[0]
                self.problems = [dataclasses.replace(p, severity="error") if p.line == line and p in self.doc.warnings
                                 else p for p in self.problems]
            elif len(path) > 5 and path[0] == "pipelines" and path[2] == "bots" and path[4] == "with":
                self.unchecked.add(path[:4])
            else:
                _drop(data, path)

    def _errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    # -- bots ------------------------------------------------------------------------------------
    def _bots(self, data: dict[str, Any]) -> list[BotSpec]:
        specs: list[BotSpec] = []
        for path, raw in _raw_bots(data):
            spec = self._bot(str(path[1]), path, raw)
            if spec is not None:
                specs.append(spec)
        return specs

    def _bot(self, pipeline: str, path: tuple, raw: dict[str, Any]) -> BotSpec | None:
        try:
            config = BotConfig.model_validate(raw)
        except ValidationError:
            # Already reported by the whole-file validation; still check `use` and `with` so that
            # one `leo validate` shows every problem of the bot, not one per edit.
            use, settings_data = raw.get("use"), raw.get("with", {})
            if isinstance(use, str) and use.strip() and isinstance(settings_data, dict):
                self._settings(path, use, settings_data, _label_for(self.doc.data, path) or "bot")
            return None
        label = f"bot '{config.id}'"
        if tuple(path) in self.unchecked:
            return _stand_in(pipeline, path, config, registered_bots().get(config.use.strip()))
        if not self.import_bots and config.use.strip() not in registered_bots():
            return _stand_in(pipeline, path, config)
        resolved = self._settings(path, config.use, config.with_, label)
        if resolved is None:
            return None
        cls, settings = resolved
        return self._bot_shape(pipeline, path, config, cls, settings, label)

    def _settings(self, path: tuple, use: str, data: dict[str, Any], label: str) -> tuple[type[Bot], BotSettings] | None:
        """The class `use` names and its validated ``with:`` settings; None when either is wrong."""
        try:
            cls = (self.registry or BotRegistry()).resolve(use, self.path.parent)
        except BotError as exc:
            message = str(exc)
            # The registry names the `use` string; the problem already points at it.
            redundant = f"bot '{use.strip()}': "
            if message.startswith(redundant):
                message = message[len(redundant):]
            self.error((*path, "use"), f"{label}: {message}", at="value")
            return None
        try:
            # Context: settings may check names the file declares (the change detector's object_type).
            settings = cls.Settings.model_validate(data, context={"object_types": _declared_types(self.doc.data)})
        except ValidationError as exc:
            self._report(exc, cls.Settings, (*path, "with"), label=label, relative_to=(*path, "with"))
            return None
        except BaseException as exc:  # a custom bot's own validator broke (even with sys.exit): report it
            reraise_operator_interrupt(exc)
            self.error(
                (*path, "with"), f"{label}: checking the settings of {shown(use.strip())} failed: {exc!r}", at="value"
            )
            return None
        return cls, settings

    def _bot_shape(
        self, pipeline: str, path: tuple, config: BotConfig, cls: type[Bot], settings: BotSettings, label: str
    ) -> BotSpec | None:
        ok = True
        kind = cls.kind
        try:  # bot code: it may raise anything, sys.exit() included
            out = config.out or cls.default_out(settings)
            schedule_text = config.schedule or (cls.default_schedule(settings) if kind == "source" else None)
        except BaseException as exc:
            reraise_operator_interrupt(exc)
            self.error((*path, "use"), f"{label}: '{config.use}' failed to give its default out or schedule: {exc!r}",
                       at="value")
            return None
        if kind == "source":
            if config.in_ is not None:
                self.error((*path, "in"), f"{label}: '{cls.name or config.use}' is a source bot and reads no queue; remove 'in'")
                ok = False
            if out is None:
                self.error((*path, "id"), f"{label}: a source bot needs 'out' (the queue it writes)")
                ok = False
            if schedule_text is None:
                self.error((*path, "id"), f"{label}: a source bot needs 'schedule' (watch, an interval like 5s, or a cron line)")
                ok = False
        else:
            if config.in_ is None:
                self.error((*path, "id"), f"{label}: a {kind} bot needs 'in' (the queue it reads)")
                ok = False
            if config.schedule is not None:
                self.error(
                    (*path, "schedule"),
                    f"{label}: 'schedule' is for source bots; a {kind} runs as soon as its 'in' queue grows",
                )
                ok = False
            if kind == "sink" and config.out is not None:
                self.error((*path, "out"), f"{label}: a sink bot writes no queue; remove 'out'")
                ok = False
            if kind == "processor" and out is None:
                what = "the queue matching events go to" if cls.name == "filter" else "the queue it writes"
                self.error((*path, "id"), f"{label}: a {cls.name or 'processor'} bot needs 'out' ({what}); add "
                           "out: QUEUE (a bot that only acts outside is a SinkBot)")
                ok = False
        if config.in_ is not None and config.in_ == out:
            self.error((*path, "out"), f"{label}: reads and writes the same queue '{out}' (a cycle)")
            ok = False
        schedule = None
        if schedule_text is not None:
            try:
                schedule = Schedule.parse(schedule_text)
            except ValueError as exc:
                where = (*path, "schedule")
                message = self.hide(where, str(exc), str(schedule_text).strip())
                origin = self.origin(where)
                self.error(where, f"{label}: schedule{origin}: {message}" if origin else f"{label}: {message}", at="value")
                ok = False
        if config.start is not None:
            if kind == "source":
                self.error((*path, "start"), f"{label}: 'start' is for bots that read a queue")
                ok = False
            else:
                try:
                    parse_when(config.start, field="start", allow=BOT_START_FORMS)
                except InputError as exc:
                    where = (*path, "start")
                    detail = self.hide(where, str(exc).removeprefix("start: "), config.start)
                    why = "" if "is not a WHEN" in detail or "is not taken here" in detail else f" ({detail})"
                    self.error(
                        where,
                        f"{label}: start must be {forms_text(BOT_START_FORMS, short=True)}, not "
                        f"{self.quoted(where, config.start)}{why}",
                        at="value",
                    )
                    ok = False
        if config.on_error is not None:  # dead letters (runtime hardening)
            if kind == "source":
                self.error((*path, "on_error"), f"{label}: 'on_error' is for bots that read a queue; a source reads none")
                ok = False
            elif config.on_error.dead_letter == config.in_:
                self.error(
                    (*path, "on_error", "dead_letter"),
                    f"{label}: on_error.dead_letter is '{config.in_}', the queue the bot reads: a dead-lettered "
                    "event would come straight back; name another queue",
                    at="value",
                )
                ok = False
        if not ok:
            return None
        limits = RunLimits(records=config.batch.records, bytes=config.batch.bytes, seconds=config.batch.seconds)
        return BotSpec(pipeline, config, cls, settings, config.in_, out, schedule, limits, path)

    # -- graph -----------------------------------------------------------------------------------
    def _duplicate_ids(self, data: dict[str, Any]) -> None:
        # From the raw data, so a duplicate is reported even when one of the two has other errors.
        seen: dict[str, tuple] = {}
        for path, raw in _raw_bots(data):
            bot_id = raw.get("id")
            if not isinstance(bot_id, str):
                continue
            if bot_id in seen:
                first_line = self.doc.key_position((*seen[bot_id], "id"))[0]
                self.error((*path, "id"), f"duplicate bot id '{bot_id}' (first used at line {first_line})", at="value")
            else:
                seen[bot_id] = path

    def _exclusive_claims(self, specs: list[BotSpec]) -> None:
        held: dict[str, BotSpec] = {}
        for spec in specs:
            try:  # bot code: it may raise anything
                claims = spec.cls.exclusive_claims(spec.settings)
            except BaseException as exc:
                reraise_operator_interrupt(exc)
                self.error((*spec.path, "use"), f"bot '{spec.id}': '{spec.config.use}' failed to give its claims: {exc!r}",
                           at="value")
                continue
            for claim in claims:
                first = held.setdefault(claim.key, spec)
                if first is not spec:
                    line = self.doc.key_position((*first.path, "with", claim.field))[0]
                    self.error(
                        (*spec.path, "with", claim.field),
                        f"bot '{spec.id}': {claim.what} is also set by bot '{first.id}' (line {line}): {claim.why}",
                        at="value",
                    )

    def _cycles(self, specs: list[BotSpec]) -> None:
        cycle = _find_cycle(specs)
        if cycle:
            first = cycle[0]
            names = " -> ".join(f"{spec.id} ({spec.out_queue})" for spec in cycle)
            self.error((*first.path, "in"), f"pipeline cycle: {names} -> {first.id}; a bot would feed itself")

    def _unwritten_queues(self, data: dict[str, Any], specs: list[BotSpec]) -> None:
        object_types = data.get("object_types")
        types = sorted(str(name) for name in object_types) if isinstance(object_types, dict) else []
        written = {spec.out_queue for spec in specs if spec.out_queue}
        written |= {spec.config.on_error.dead_letter for spec in specs if spec.config.on_error}
        written |= {f"{name}.changes" for name in types}
        for spec in specs:
            queue = spec.in_queue
            if not queue or queue in written:
                continue
            if queue.endswith(".changes"):
                # `T.changes` exists for every declared object type T: compare the type names.
                type_name = queue[: -len(".changes")]
                close = difflib.get_close_matches(type_name, types, n=1)
                hint = (
                    f" (did you mean '{close[0]}.changes'?)"
                    if close
                    else f" (object type '{type_name}' is not declared under object_types)"
                )
            else:
                close = difflib.get_close_matches(queue, sorted(written), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            self.warn(
                (*spec.path, "in"),
                f"bot '{spec.id}': no bot writes queue '{queue}'{hint}; it gets events only from `leo queues put` or the API",
            )

    def _typed_queries(self, model: PipelinesFile, specs: list[BotSpec]) -> None:
        """Warn where a query compares a field declared under ``object_types.T.fields`` with a
        value of another type (``quantity: {lt: '5'}`` for an integer): it never matches."""
        typed = {name: config.fields for name, config in model.object_types.items() if config.fields}
        if not typed:
            return
        queue_types = {f"{name}.changes": name for name in typed}
        grew = True
        while grew:  # a filter forwards its events untouched: its out holds the same type
            grew = False
            for spec in specs:
                if spec.cls.name == "filter" and spec.out_queue and spec.in_queue in queue_types \
                        and spec.out_queue not in queue_types:
                    queue_types[spec.out_queue] = queue_types[spec.in_queue]
                    grew = True
        for spec in specs:
            object_type = queue_types.get(spec.in_queue or "")
            if object_type is None:
                continue
            for name, info in type(spec.settings).model_fields.items():
                query = getattr(spec.settings, name, None)
                if isinstance(query, Query) and isinstance(query.spec, dict):
                    where = (*spec.path, "with", info.alias or name)
                    for problem in query_type_problems(query.spec, typed[object_type], object_type):
                        path, message = problem
                        self.warn((*where, *path), f"bot '{spec.id}': {message}")

    def _misplaced_setting(self, path: tuple) -> str | None:
        """For an unknown field of a bot that is one of its settings: where it goes."""
        if len(path) != 5 or path[0] != "pipelines" or path[2] != "bots":
            return None
        raw = _raw_bot(self.doc.data, path[:4])
        use = raw.get("use") if raw is not None else None
        if not isinstance(use, str) or not use.strip() or (not self.import_bots and use.strip() not in registered_bots()):
            return None
        try:
            cls = (self.registry or BotRegistry()).resolve(use, self.path.parent)
        except BotError:
            return None
        names = {info.alias or name for name, info in cls.Settings.model_fields.items()}
        if path[4] not in names:
            return None
        return f" ('{path[4]}' is a setting of {shown(use.strip())}: indent it under 'with:')"

    # -- pydantic errors to located problems ----------------------------------------------------
    def _report(
        self,
        exc: ValidationError,
        root: type[BaseModel],
        prefix: tuple,
        *,
        label: str | None = None,
        relative_to: tuple = (),
        inside: tuple = ("with",),
    ) -> None:
        for err in exc.errors():
            loc = tuple(err["loc"])
            kind = err["type"]
            ctx = err.get("ctx") or {}
            path = (*prefix, *loc)
            if kind == "query" and ctx.get("path"):
                path = (*path, *ctx["path"])
            shown_label = label or _label_for(self.doc.data, path)
            at = "value"
            if loc and loc[-1] == "[key]":  # a mapping key (a name) is invalid: point at that key
                path = path[:-1]
                at = "key"
                where = _dotted(path[:-1][len(relative_to):] if relative_to else _strip_bot(path[:-1]))
            else:
                where = _dotted(path[len(relative_to):] if relative_to else _strip_bot(path))
            if kind == "extra_forbidden":
                allowed = _allowed_keys(root, loc[:-1])
                hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                if relative_to:
                    parent = _dotted((*inside, *loc[:-1]))
                else:  # a bot's label already says which bot: name only the part inside it
                    parent = _dotted(_strip_bot(loc[:-1]) if shown_label else loc[:-1])
                inside = f" in '{parent}'" if parent else ""
                message = f"unknown field '{_part(loc[-1])}'{inside}{suggestion}"
                misplaced = self._misplaced_setting(path) if not suggestion else None
                if misplaced:
                    message += misplaced
                elif allowed:
                    message += f"; known fields: {', '.join(allowed)}"
                at = "key"
            elif kind == "missing":
                message = f"missing required field '{where}'"
                path = path[:-1]
                at = "key"
            elif kind in ("union_tag_invalid", "union_tag_not_found"):
                field = str(ctx.get("discriminator", "kind")).strip("'\"")
                kinds = _discriminator_values(root, loc, field)
                listed = f"; {field}s: {', '.join(kinds)}" if kinds else ""
                if kind == "union_tag_invalid":
                    tag = str(ctx.get("tag", ""))
                    hint = difflib.get_close_matches(tag, kinds, n=1)
                    suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
                    path = (*path, field)
                    message = f"{where}.{field}: unknown {field} {shown(tag)}{suggestion}{listed}"
                else:
                    message = f"{where}: missing '{field}' (which kind of {_part(loc[-1]) if loc else 'value'} this is){listed}"
            elif kind == "query":
                message = ctx.get("message") or err["msg"]
                # Inside the query: the key naming the field or operator; else the whole value.
                at = "key" if ctx.get("path") else "value"
            else:
                reason = _plain_reason(kind, ctx) or err["msg"]
                if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
                    reason = NAME_RULE
                # A value taken from the environment is named by its template, never shown.
                reason = self.hide(path, _clean(reason), err.get("input"))
                where += self.origin(path)
                message = f"{where}: {reason}" if where else reason
                if (
                    kind not in ("value_error",)
                    and "input" in err
                    and not isinstance(err["input"], dict | list)
                    and self.doc.template(path) is None
                ):
                    message += f" (got {shown(err['input'])})"
                    if kind == "literal_error" and isinstance(err["input"], str):
                        close = difflib.get_close_matches(err["input"], re.findall(r"'([^']*)'", str(ctx.get("expected"))))
                        message += f" (did you mean '{close[0]}'?)" if close else ""
            if shown_label:
                message = f"{shown_label}: {message}"
            self.error(path, message, at=at)


def _plain_reason(kind: str, ctx: dict[str, Any]) -> str | None:
    """What a pydantic error type means, in the words of someone editing YAML (None: keep its own)."""
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be text"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping (key: value entries)"
    if kind == "list_type":
        return "must be a list ([a, b], or one '- ' line per item)"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    bounds = {"greater_than_equal": ("ge", "{} or more"), "greater_than": ("gt", "more than {}"),
              "less_than_equal": ("le", "{} or less"), "less_than": ("lt", "less than {}")}
    if kind in bounds:
        key, text = bounds[kind]
        return "must be " + text.format(ctx.get(key))
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        count = ctx.get("min_length")
        return f"must hold at least {count} item{'' if count == 1 else 's'}"
    if kind == "too_long":
        return f"must hold at most {ctx.get('max_length')} items"
    return None


def _discriminator_values(root: type[BaseModel], loc: Sequence[Any], field: str) -> list[str]:
    """The values the discriminator `field` of the union at `loc` may take (its members' literals)."""
    values: list[str] = []
    for member in typing.get_args(_unwrap(_annotation_at(root, loc))):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and field in member.model_fields:
            values.extend(str(arg) for arg in typing.get_args(member.model_fields[field].annotation))
    return values


class _UncheckedSettings(BotSettings):
    model_config = ConfigDict(extra="allow", frozen=True)


_NAME_KEYS = ("id", "use", "in", "out")


def _unset_scalars(value: Any, path: tuple) -> Iterator[tuple[tuple, Unset]]:
    """Every `Unset` scalar in loaded data, with its path."""
    if isinstance(value, Unset):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unset_scalars(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unset_scalars(item, (*path, index))


def _drop(data: dict[str, Any], path: tuple) -> None:
    """Remove the setting holding `path` (for an item of a list, the whole list): its default applies."""
    while len(path) > 1 and isinstance(path[-1], int):
        path = path[:-1]
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _stand_in(pipeline: str, path: tuple, config: BotConfig, cls: type[Bot] | None = None) -> BotSpec:
    """A bot whose code was not imported (``import_bots=False``), or whose settings name an unset
    variable (a built-in's `cls`): enough for status and listings."""
    kind = cls.kind if cls is not None else "processor" if config.in_ and config.out else "sink" if config.in_ else "source"
    cls = type("NotImportedBot", (Bot,), {"kind": kind, "name": config.use.strip(), "Settings": _UncheckedSettings})
    try:
        schedule = Schedule.parse(config.schedule) if config.schedule else None
    except ValueError:
        schedule = None
    limits = RunLimits(records=config.batch.records, bytes=config.batch.bytes, seconds=config.batch.seconds)
    settings = _UncheckedSettings.model_validate(config.with_)
    return BotSpec(pipeline, config, cls, settings, config.in_, config.out, schedule, limits, path)


def _raw_bot(data: Any, path: tuple) -> dict[str, Any] | None:
    try:
        raw = data[path[0]][path[1]][path[2]][path[3]]
    except (KeyError, IndexError, TypeError):
        return None
    return raw if isinstance(raw, dict) else None


def _declared_types(data: Any) -> dict[str, Any]:
    object_types = data.get("object_types") if isinstance(data, dict) else None
    return object_types if isinstance(object_types, dict) else {}


def _raw_bots(data: dict[str, Any]) -> list[tuple[tuple, dict[str, Any]]]:
    """Every bot mapping of the file as written, with its path ("pipelines", name, "bots", index)."""
    found: list[tuple[tuple, dict[str, Any]]] = []
    pipelines = data.get("pipelines")
    if not isinstance(pipelines, dict):
        return found
    for pipeline, body in pipelines.items():
        if not isinstance(body, dict) or not isinstance(body.get("bots"), list):
            continue
        for index, raw in enumerate(body["bots"]):
            if isinstance(raw, dict):
                found.append((("pipelines", pipeline, "bots", index), raw))
    return found


def _find_cycle(specs: list[BotSpec]) -> list[BotSpec] | None:
    readers: dict[str, list[BotSpec]] = {}
    for spec in specs:
        if spec.in_queue:
            readers.setdefault(spec.in_queue, []).append(spec)
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done
    stack: list[BotSpec] = []

    def visit(spec: BotSpec) -> list[BotSpec] | None:
        state[id(spec)] = 1
        stack.append(spec)
        for reader in readers.get(spec.out_queue or "", []):
            mark = state.get(id(reader))
            if mark == 1:
                return stack[stack.index(reader):]
            if mark is None:
                found = visit(reader)
                if found:
                    return found
        stack.pop()
        state[id(spec)] = 2
        return None

    for spec in specs:
        if id(spec) not in state:
            found = visit(spec)
            if found:
                return found
    return None


def _label_for(data: Any, path: tuple) -> str | None:
    if len(path) >= 4 and path[0] == "pipelines" and path[2] == "bots":
        try:
            raw = data["pipelines"][path[1]]["bots"][path[3]]
        except (KeyError, IndexError, TypeError):
            return None
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            return f"bot '{raw['id']}'"
        return f"pipeline '{path[1]}', bot #{path[3] + 1}"
    return None


def _strip_bot(path: tuple) -> tuple:
    if len(path) >= 4 and path[0] == "pipelines" and path[2] == "bots":
        return path[4:]
    return path


def _dotted(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{_part(part)}" if text else _part(part))
    return text


def _part(key: Any) -> str:
    """A key for a message, cut to a readable length (a key may be a whole paragraph)."""
    text = str(key)
    return text if len(text) <= 60 else text[:60] + "..."


def _clean(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    message = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", message)  # YAML's word for it
    message = message.replace(" after validation", "")
    return message[:1].lower() + message[1:]


def _annotation_at(root: type[BaseModel], loc: Sequence[Any]) -> Any:
    """The annotation of the value at `loc` inside `root` (None when the walk leaves the models)."""
    target: Any = root
    for part in loc:
        target = _unwrap(target)
        if isinstance(target, type) and issubclass(target, BaseModel):
            fields = {info.alias or name: info.annotation for name, info in target.model_fields.items()}
            target = fields.get(part)
        elif typing.get_origin(target) in (dict, Mapping):
            target = typing.get_args(target)[1]
        elif typing.get_origin(target) in (list, Sequence, tuple):
            target = typing.get_args(target)[0]
        else:
            return None
    return target


def _allowed_keys(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    target = _unwrap(_annotation_at(root, loc))
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [info.alias or name for name, info in target.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
