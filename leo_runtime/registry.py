"""Finding bots by the name a pipeline's ``use:`` gives.

Four ways, in this order: a built-in (`leo_runtime.bots`), an installed plugin (the
``leo_runtime.bots`` entry-point group), ``module:attr`` (an importable module; the pipelines
file's folder is importable too), or ``./path/file.py:Class`` (a file inside the pipelines file's
folder: after symlinks and ``..`` are resolved it must still be there; code kept elsewhere is
installed as a package and named ``module:Class``).

Importing bot code may raise anything, ``SystemExit`` included: it becomes a `BotError` naming
the bot (only a Ctrl-C on the main thread goes on as the operator's interrupt).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from .bot import Bot, registered_bots
from .botcalls import clip, describe, reraise_operator_interrupt, show
from .errors import BotError

ENTRY_POINT_GROUP = "leo_runtime.bots"

# Custom bot files loaded so far, shared by every registry so that a reload of pipelines.yaml
# does not execute an unchanged file again: path -> ((mtime_ns, size), module).
_FILE_MODULES: dict[Path, tuple[tuple[int, int], ModuleType]] = {}
_FILE_LOCK = threading.Lock()  # guards the two tables; each file has its own lock for loading
_FILE_LOADING: dict[Path, threading.Lock] = {}


@dataclass(frozen=True)
class BotEntry:
    """One bot `leo bots list` shows: its name, where it comes from and its class (if loaded)."""

    name: str
    origin: str  # "built-in" or "plugin <distribution>"
    cls: type[Bot] | None


class BotRegistry:
    """Resolves ``use:`` strings to bot classes. Loading a plugin happens on first use."""

    def __init__(self) -> None:
        _import_builtins()  # importing the package registers the built-ins
        self._builtins = registered_bots()
        self._plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}

    def entries(self) -> list[BotEntry]:
        """Every built-in and installed bot, by name (plugins are loaded to read their settings)."""
        found = [BotEntry(name, "built-in", cls) for name, cls in self._builtins.items()]
        for name, ep in self._plugins.items():
            origin = f"plugin {ep.dist.name if ep.dist else ep.value}"
            try:
                found.append(BotEntry(name, origin, self.resolve(name)))
            except BotError:
                found.append(BotEntry(name, origin, None))
        return sorted(found, key=lambda entry: entry.name)

    def names(self) -> list[str]:
        """Names usable without a module or path: built-ins and plugins."""
        return sorted(set(self._builtins) | set(self._plugins))

    def resolve(self, use: str, base_dir: Path | None = None) -> type[Bot]:
        """The bot class `use` names; BotError says why not and suggests close names."""
        use = use.strip()
        if ":" in use:
            target, _, attr = use.rpartition(":")
            if target.endswith(".py") or "/" in target or "\\" in target:
                return self._from_file(target, attr, base_dir or Path.cwd())
            return self._from_module(target, attr, base_dir)
        if use in self._builtins and use in self._plugins:
            raise BotError(f"bot '{use}' is both a built-in and a plugin ({self._plugins[use].value}); uninstall one")
        if use in self._builtins:
            return self._builtins[use]
        if use in self._plugins:
            try:
                cls = self._plugins[use].load()
            except BaseException as exc:  # a plugin's import error must name the plugin
                reraise_operator_interrupt(exc)
                reason = clip(str(exc)) if isinstance(exc, Exception) else clip(describe(exc))
                raise BotError(f"bot '{use}': plugin {self._plugins[use].value} failed to load: {reason}") from exc
            return _check_bot_class(cls, use)
        if use.endswith(".py") or "/" in use or "\\" in use:
            raise BotError(f"bot '{use}': name the class after the file, like '{use}:MyBot'")
        hint = difflib.get_close_matches(use, self.names(), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        if not hint and "." in use.strip("."):
            module_name, _, attr = use.rpartition(".")
            suggestion = f" (for a class in a module write '{module_name}:{attr}')"
        raise BotError(
            f"unknown bot '{use}'{suggestion}; use a built-in ({', '.join(sorted(self._builtins))}), "
            "an installed plugin, module:Class or ./file.py:Class"
        )

    def _from_module(self, module_name: str, attr: str, base_dir: Path | None) -> type[Bot]:
        if base_dir is not None and str(base_dir) not in sys.path:
            sys.path.append(str(base_dir))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BotError(f"bot '{module_name}:{attr}': cannot import module '{module_name}': {exc}") from exc
        except BaseException as exc:  # SystemExit and the like from the module's code included
            reraise_operator_interrupt(exc)
            raise BotError(f"bot '{module_name}:{attr}': importing '{module_name}' failed: {show(exc)}") from exc
        return _attr(module, attr, f"{module_name}:{attr}")

    def _from_file(self, file_name: str, attr: str, base_dir: Path) -> type[Bot]:
        use = f"{file_name}:{attr}"
        project = base_dir.resolve()
        path = Path(file_name).expanduser()
        path = (path if path.is_absolute() else project / path).resolve()  # symlinks and '..' resolved
        if not path.is_relative_to(project):
            where = f"{file_name} is" if Path(file_name) == path else f"{file_name} resolves to {path},"
            raise BotError(
                f"bot '{use}': {where} outside the project folder {project} (the pipelines file's folder); a bot "
                "file must be inside it: move it there, or install code kept elsewhere as a package and name it "
                "module:Class"
            )
        if not path.exists():
            raise BotError(f"bot '{use}': file {path} does not exist")
        if not path.is_file():
            raise BotError(f"bot '{use}': {path} is not a file")
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with _FILE_LOCK:
            loading = _FILE_LOADING.setdefault(path, threading.Lock())
        # One file's import at a time, others unhindered: a module that hangs at import blocks
        # only the loads of that same file.
        with loading:
            with _FILE_LOCK:
                cached = _FILE_MODULES.get(path)
            if cached is not None and cached[0] == stamp:
                module = cached[1]
            else:
                module = _load_file(path, use)
                with _FILE_LOCK:
                    _FILE_MODULES[path] = (stamp, module)
        return _attr(module, attr, use, shown=file_name)


def _load_file(path: Path, use: str) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"leo_user_bots.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BotError(f"bot '{use}': {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit and the like from the file's code included
        reraise_operator_interrupt(exc)
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        raise BotError(f"bot '{use}': loading {path}{_line_in(path, exc)} failed: {show(exc)}") from exc
    return module


def _line_in(path: Path, exc: BaseException) -> str:
    """`` (line N)``: where in `path` loading failed, when the error comes from that file."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path and exc.lineno:
        return f" (line {exc.lineno})"
    line = None
    frame = exc.__traceback__
    while frame is not None:
        if Path(frame.tb_frame.f_code.co_filename) == path:
            line = frame.tb_lineno
        frame = frame.tb_next
    return f" (line {line})" if line else ""


def _import_builtins() -> ModuleType:
    """leo-runtime's built-in bots (the top-level bots/ folder, installed as `leo_runtime.bots`)."""
    return importlib.import_module("leo_runtime.bots")


def _attr(module: ModuleType, attr: str, use: str, *, shown: str | None = None) -> type[Bot]:
    if not attr:
        raise BotError(f"bot '{use}': name the class after ':' (like module:MyBot)")
    try:
        cls = getattr(module, attr)
    except AttributeError:
        names = [name for name, value in vars(module).items() if isinstance(value, type) and issubclass(value, Bot)]
        hint = difflib.get_close_matches(attr, names, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise BotError(f"bot '{use}': {shown or module.__name__} has no attribute '{attr}'{suggestion}") from None
    return _check_bot_class(cls, use)


def _check_bot_class(cls: object, use: str) -> type[Bot]:
    if not (isinstance(cls, type) and issubclass(cls, Bot)):
        what = f"the class {cls.__module__}.{cls.__qualname__}" if isinstance(cls, type) else repr(cls)
        raise BotError(f"bot '{use}': {what} is not a bot: a bot class subclasses leo_runtime.Bot")
    return cls
