"""BotRegistry: built-ins, plugins (entry points), module:attr and ./file.py:Class, all for real.

Plugins are real distributions: a ``*.dist-info`` folder with an ``entry_points.txt`` in tmp_path,
put on sys.path before the registry is built. Nothing is mocked; what the tests do to the
interpreter (sys.path, sys.modules, the bot name table) is undone after each test.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

import leo_runtime.bots as bots
from leo_runtime.bot import Bot, SinkBot, register_bot, registered_bots
from leo_runtime.bots.file_reader import FileReader
from leo_runtime.bots.filter import Filter
from leo_runtime.errors import BotError
from leo_runtime.registry import ENTRY_POINT_GROUP, BotEntry, BotRegistry

pytestmark = pytest.mark.usefixtures("isolated_imports")

def write(root: Path, relative: str, source: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


BOT_FILE = """
from leo_runtime import Bot, BotSettings

VERSION = {version}


class Shout(Bot):
    class Settings(BotSettings):
        field: str

    def process(self, events, ctx):
        yield from events


class NotABot:
    pass
"""


def bot_file(root: Path, relative: str = "bots/shout.py", version: int = 1) -> Path:
    return write(root, relative, BOT_FILE.format(version=version))


def fake_distribution(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A real installed distribution: ``NAME-1.0.dist-info`` (METADATA, entry_points.txt) + modules."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{ep} = {target}" for ep, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for module, source in modules.items():
        write(root, f"{module}.py", source)


PLUGIN_MODULE = """
from leo_runtime import SinkBot, BotSettings


class Shout(SinkBot):
    description = "shouts"

    class Settings(BotSettings):
        volume: int = 11

    def process(self, events, ctx):
        return None


class Other(SinkBot):
    pass


NOT_A_BOT = "just text"
"""


# --------------------------------------------------------------------------------------------
# Built-ins and unknown names
# --------------------------------------------------------------------------------------------


def test_built_ins_resolve_by_name() -> None:
    registry = BotRegistry()
    assert registry.resolve("filter") is Filter
    assert registry.resolve("file_reader") is FileReader
    assert registry.resolve("  filter  ") is Filter  # surrounding blanks do not matter
    assert {"filter", "file_reader"} <= set(registry.names())
    entries = {entry.name: entry for entry in registry.entries()}
    assert entries["filter"] == BotEntry("filter", "built-in", Filter)
    assert entries["file_reader"] == BotEntry("file_reader", "built-in", FileReader)
    assert [entry.name for entry in registry.entries()] == sorted(entries)


def test_unknown_name_suggests_the_closest_one() -> None:
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("filtr")
    message = str(info.value)
    assert message.startswith("unknown bot 'filtr' (did you mean 'filter'?); use a built-in (")
    assert "file_reader, filter" in message
    assert "module:Class or ./file.py:Class" in message


def test_unknown_name_without_a_close_one() -> None:
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert str(info.value).startswith("unknown bot 'zzzzzz'; use a built-in")


def test_dotted_class_path_suggests_module_colon_attr() -> None:
    with pytest.raises(BotError, match=r"for a class in a module write 'my_company\.bots:ErpPush'"):
        BotRegistry().resolve("my_company.bots.ErpPush")


def test_file_without_class_asks_for_the_class(tmp_path: Path) -> None:
    bot_file(tmp_path)
    with pytest.raises(BotError, match=r"name the class after the file, like './bots/shout\.py:MyBot'"):
        BotRegistry().resolve("./bots/shout.py", tmp_path)


def test_a_name_registered_later_is_known_to_registries_built_after(tmp_path: Path) -> None:
    @register_bot("leo_reg_late")
    class Late(Bot):
        pass

    assert BotRegistry().resolve("leo_reg_late") is Late


# --------------------------------------------------------------------------------------------
# module:attr
# --------------------------------------------------------------------------------------------


def test_module_attr_from_the_base_dir(tmp_path: Path) -> None:
    write(tmp_path, "leo_reg_company/__init__.py", "")
    write(tmp_path, "leo_reg_company/bots.py", BOT_FILE.format(version=1))
    cls = BotRegistry().resolve("leo_reg_company.bots:Shout", tmp_path)
    assert cls.__module__ == "leo_reg_company.bots" and cls.__name__ == "Shout"
    assert issubclass(cls, Bot)
    assert str(tmp_path) in sys.path
    # Importing again gives the same class (the module is imported once).
    assert BotRegistry().resolve("leo_reg_company.bots:Shout", tmp_path) is cls


def test_module_attr_from_an_installed_module() -> None:
    assert BotRegistry().resolve("leo_runtime.bots.filter:Filter") is Filter


@pytest.mark.parametrize(
    ("use", "message"),
    [
        ("leo_reg_mod:Shuot", "bot 'leo_reg_mod:Shuot': leo_reg_mod has no attribute 'Shuot' (did you mean 'Shout'?)"),
        ("leo_reg_mod:VERSION", "bot 'leo_reg_mod:VERSION': 1 is not a bot: a bot class subclasses leo_runtime.Bot"),
        (
            "leo_reg_mod:NotABot",
            "bot 'leo_reg_mod:NotABot': the class leo_reg_mod.NotABot is not a bot: a bot class subclasses leo_runtime.Bot",
        ),
        ("leo_reg_mod:", "bot 'leo_reg_mod:': name the class after ':' (like module:MyBot)"),
    ],
)
def test_module_attr_errors(tmp_path: Path, use: str, message: str) -> None:
    write(tmp_path, "leo_reg_mod.py", BOT_FILE.format(version=1))
    with pytest.raises(BotError) as info:
        BotRegistry().resolve(use, tmp_path)
    assert str(info.value) == message


def test_module_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("leo_reg_nowhere:Bot", tmp_path)
    assert str(info.value).startswith("bot 'leo_reg_nowhere:Bot': cannot import module 'leo_reg_nowhere'")


def test_module_that_raises_on_import(tmp_path: Path) -> None:
    write(tmp_path, "leo_reg_boom.py", "raise RuntimeError('no config')\n")
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("leo_reg_boom:Bot", tmp_path)
    assert str(info.value) == "bot 'leo_reg_boom:Bot': importing 'leo_reg_boom' failed: RuntimeError('no config')"
    assert isinstance(info.value.__cause__, RuntimeError)


# --------------------------------------------------------------------------------------------
# ./file.py:Class
# --------------------------------------------------------------------------------------------


def test_file_relative_to_base_dir(tmp_path: Path) -> None:
    bot_file(tmp_path)
    cls = BotRegistry().resolve("./bots/shout.py:Shout", tmp_path)
    assert cls.__name__ == "Shout" and issubclass(cls, Bot)
    assert sys.modules[cls.__module__].VERSION == 1
    assert sys.modules[cls.__module__].__file__ == str((tmp_path / "bots" / "shout.py").resolve())


def test_file_forms_relative_nested_and_absolute(tmp_path: Path) -> None:
    path = bot_file(tmp_path, "deep/er/shout.py")
    registry = BotRegistry()
    first = registry.resolve("deep/er/shout.py:Shout", tmp_path)
    assert registry.resolve("./deep/er/../er/shout.py:Shout", tmp_path) is first
    assert registry.resolve(f"{path}:Shout", tmp_path) is first  # absolute, inside the project folder


def test_file_defaults_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bot_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert BotRegistry().resolve("./bots/shout.py:Shout").__name__ == "Shout"


def test_same_file_twice_gives_the_same_class_until_it_changes(tmp_path: Path) -> None:
    path = bot_file(tmp_path, version=1)
    stat = path.stat()
    registry = BotRegistry()
    first = registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert registry.resolve("./bots/shout.py:Shout", tmp_path) is first
    # A new registry (a reload of pipelines.yaml) does not execute an unchanged file again.
    assert BotRegistry().resolve("./bots/shout.py:Shout", tmp_path) is first

    # Touched (new mtime, same content): loaded again, a new class.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert touched is not first
    assert registry.resolve("./bots/shout.py:Shout", tmp_path) is touched

    # Edited: the new code runs.
    bot_file(tmp_path, version=2)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    edited = registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert edited is not touched
    assert sys.modules[edited.__module__].VERSION == 2


def test_an_edit_within_the_same_mtime_is_still_seen(tmp_path: Path) -> None:
    # Coarse file-system clocks can give two quick writes the same mtime: the size tells them apart.
    path = bot_file(tmp_path, version=1)
    stat = path.stat()
    registry = BotRegistry()
    first = registry.resolve("./bots/shout.py:Shout", tmp_path)
    bot_file(tmp_path, version=12345)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    edited = registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert edited is not first
    assert sys.modules[edited.__module__].VERSION == 12345


def test_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("./bots/nope.py:Shout", tmp_path)
    expected = (tmp_path / "bots" / "nope.py").resolve()
    assert str(info.value) == f"bot './bots/nope.py:Shout': file {expected} does not exist"


def test_file_that_raises_on_import_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bots/broken.py",
        """
        from leo_runtime import Bot

        SETTINGS = {}
        TIMEOUT = SETTINGS["timeout"]
        """,
    )
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("./bots/broken.py:Broken", tmp_path)
    message = str(info.value)
    assert message == f"bot './bots/broken.py:Broken': loading {path.resolve()} (line 4) failed: KeyError('timeout')"
    assert isinstance(info.value.__cause__, KeyError)
    assert not [name for name in sys.modules if name.startswith("leo_user_bots.broken_")]


def test_file_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bots/typo.py", "from leo_runtime import Bot\n\nclass Typo(Bot)\n    pass\n")
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("./bots/typo.py:Typo", tmp_path)
    assert str(info.value).startswith(f"bot './bots/typo.py:Typo': loading {path.resolve()} (line 3) failed: SyntaxError")


def test_a_broken_edit_is_not_cached_and_a_fix_loads(tmp_path: Path) -> None:
    path = bot_file(tmp_path, version=1)
    stat = path.stat()
    registry = BotRegistry()
    good = registry.resolve("./bots/shout.py:Shout", tmp_path)
    module_name = good.__module__

    path.write_text("raise ValueError('half-written')\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(BotError, match="half-written"):
        registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert sys.modules[module_name].VERSION == 1  # the previous module stays importable

    bot_file(tmp_path, version=3)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    fixed = registry.resolve("./bots/shout.py:Shout", tmp_path)
    assert sys.modules[fixed.__module__].VERSION == 3


def test_file_attr_errors(tmp_path: Path) -> None:
    bot_file(tmp_path)
    registry = BotRegistry()
    with pytest.raises(BotError) as info:
        registry.resolve("./bots/shout.py:Shuot", tmp_path)
    assert str(info.value) == "bot './bots/shout.py:Shuot': ./bots/shout.py has no attribute 'Shuot' (did you mean 'Shout'?)"
    with pytest.raises(BotError, match=r"the class .*NotABot is not a bot"):
        registry.resolve("./bots/shout.py:NotABot", tmp_path)


def test_two_files_with_the_same_name_in_different_folders(tmp_path: Path) -> None:
    bot_file(tmp_path, "a/shout.py", version=1)
    bot_file(tmp_path, "b/shout.py", version=2)
    registry = BotRegistry()
    first = registry.resolve("./a/shout.py:Shout", tmp_path)
    second = registry.resolve("./b/shout.py:Shout", tmp_path)
    assert first is not second
    assert sys.modules[first.__module__].VERSION == 1
    assert sys.modules[second.__module__].VERSION == 2


@pytest.mark.parametrize(
    ("use", "shown"),
    [
        ("../outside/shout.py:Shout", "../outside/shout.py resolves to {outside},"),
        ("./bots/../../outside/shout.py:Shout", "./bots/../../outside/shout.py resolves to {outside},"),
        ("{outside}:Shout", "{outside} is"),
        ("./bots/link.py:Shout", "./bots/link.py resolves to {outside},"),  # a symlink inside pointing outside
        ("./bots/linked-dir/shout.py:Shout", "./bots/linked-dir/shout.py resolves to {outside},"),
    ],
)
def test_a_bot_file_outside_the_project_folder_is_refused(tmp_path: Path, use: str, shown: str) -> None:
    project = tmp_path / "project"
    outside = bot_file(tmp_path, "outside/shout.py").resolve()
    bot_file(project, "bots/inside.py")
    (project / "bots" / "link.py").symlink_to(outside)
    (project / "bots" / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    use = use.format(outside=outside)
    with pytest.raises(BotError) as info:
        BotRegistry().resolve(use, project)
    assert str(info.value) == (
        f"bot '{use}': {shown.format(outside=outside)} outside the project folder {project.resolve()} (the pipelines "
        "file's folder); a bot file must be inside it: move it there, or install code kept elsewhere as a package "
        "and name it module:Class"
    )
    assert not [name for name in sys.modules if name.startswith("leo_user_bots.shout_")]  # never executed


def test_symlinks_and_dots_that_stay_inside_the_project_are_fine(tmp_path: Path) -> None:
    project = tmp_path / "project"
    real = bot_file(project, "lib/shout.py")
    (project / "bots").mkdir()
    (project / "bots" / "link.py").symlink_to(real)
    linked_project = tmp_path / "linked-project"  # the project reached through a symlink
    linked_project.symlink_to(project, target_is_directory=True)
    registry = BotRegistry()
    first = registry.resolve("./bots/link.py:Shout", project)
    assert registry.resolve("./bots/../lib/shout.py:Shout", project) is first
    assert registry.resolve("./lib/shout.py:Shout", linked_project) is first
    assert registry.resolve(f"{linked_project}/lib/shout.py:Shout", project) is first


def test_a_folder_or_home_path_as_a_bot_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bots" / "pkg.py").mkdir(parents=True)
    with pytest.raises(BotError, match=r"bots/pkg.py is not a file$"):
        BotRegistry().resolve("./bots/pkg.py:Shout", tmp_path)
    home = tmp_path / "home"
    bot_file(home, "shout.py")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(BotError, match=r"~/shout.py resolves to .*, outside the project folder"):
        BotRegistry().resolve("~/shout.py:Shout", tmp_path / "bots")


@pytest.mark.parametrize(
    ("statement", "shown"),
    [
        ("raise SystemExit(3)", "SystemExit(3)"),
        ("import sys; sys.exit()", "SystemExit()"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt()"),
        ("raise GeneratorExit", "GeneratorExit()"),
        ("import asyncio; raise asyncio.CancelledError", "CancelledError()"),
    ],
)
def test_bot_code_raising_any_base_exception_at_import_is_a_bot_error(tmp_path: Path, statement: str, shown: str) -> None:
    # On a thread other than the main one, as a reload loads the file: nothing there is a Ctrl-C.
    import threading

    path = write(tmp_path, "bots/exits.py", f"from leo_runtime import Bot\n{statement}\n")
    write(tmp_path, "leo_reg_exits.py", f"{statement}\n")
    caught: list[BaseException] = []

    def load() -> None:
        for use in ("./bots/exits.py:Exits", "leo_reg_exits:Exits"):
            try:
                BotRegistry().resolve(use, tmp_path)
            except BaseException as exc:
                caught.append(exc)

    thread = threading.Thread(target=load)
    thread.start()
    thread.join(30)
    assert [type(exc) for exc in caught] == [BotError, BotError]
    assert str(caught[0]) == f"bot './bots/exits.py:Exits': loading {path.resolve()} (line 2) failed: {shown}"
    assert str(caught[1]) == f"bot 'leo_reg_exits:Exits': importing 'leo_reg_exits' failed: {shown}"


def test_ctrl_c_on_the_main_thread_during_an_import_still_interrupts(tmp_path: Path) -> None:
    write(tmp_path, "bots/slow.py", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        BotRegistry().resolve("./bots/slow.py:Slow", tmp_path)


def test_a_plugin_that_exits_at_import_is_a_bot_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(tmp_path, "fake-leo-exits", {"exits": "fake_leo_exits:Bot"},
                      {"fake_leo_exits": "import sys\nsys.exit(7)\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("exits")
    assert str(info.value) == "bot 'exits': plugin fake_leo_exits:Bot failed to load: SystemExit: 7"


# --------------------------------------------------------------------------------------------
# Entry-point plugins
# --------------------------------------------------------------------------------------------


def test_entry_point_plugin_resolves_and_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(
        tmp_path,
        "fake-leo-plugin",
        {"shout": "fake_leo_plugin:Shout"},
        {"fake_leo_plugin": PLUGIN_MODULE},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = BotRegistry()
    assert "shout" in registry.names()
    cls = registry.resolve("shout")
    assert cls.__module__ == "fake_leo_plugin" and cls.__name__ == "Shout"
    assert issubclass(cls, SinkBot)
    entries = {entry.name: entry for entry in registry.entries()}
    assert entries["shout"] == BotEntry("shout", "plugin fake-leo-plugin", cls)
    assert entries["filter"].origin == "built-in"
    assert [entry.name for entry in registry.entries()] == sorted(entries)


def test_unknown_name_suggests_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(tmp_path, "fake-leo-plugin", {"shout": "fake_leo_plugin:Shout"}, {"fake_leo_plugin": PLUGIN_MODULE})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BotError, match=r"unknown bot 'shuot' \(did you mean 'shout'\?\)"):
        BotRegistry().resolve("shuot")


def test_plugin_named_like_a_built_in_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(tmp_path, "fake-leo-clash", {"filter": "fake_leo_clash:Other"}, {"fake_leo_clash": PLUGIN_MODULE})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = BotRegistry()
    with pytest.raises(BotError) as info:
        registry.resolve("filter")
    assert str(info.value) == "bot 'filter' is both a built-in and a plugin (fake_leo_clash:Other); uninstall one"
    origins = sorted(entry.origin for entry in registry.entries() if entry.name == "filter")
    assert origins == ["built-in", "plugin fake-leo-clash"]


def test_plugin_that_fails_to_load_names_the_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(
        tmp_path,
        "fake-leo-broken",
        {"broken": "fake_leo_broken:Broken", "missing": "fake_leo_broken_nowhere:Bot"},
        {"fake_leo_broken": "raise ImportError('needs libfoo')\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = BotRegistry()
    with pytest.raises(BotError) as info:
        registry.resolve("broken")
    assert str(info.value) == "bot 'broken': plugin fake_leo_broken:Broken failed to load: needs libfoo"
    with pytest.raises(BotError, match=r"^bot 'missing': plugin fake_leo_broken_nowhere:Bot failed to load: "):
        registry.resolve("missing")
    # `leo bots list` still shows them, without a class.
    entries = {entry.name: entry for entry in registry.entries()}
    assert entries["broken"] == BotEntry("broken", "plugin fake-leo-broken", None)


def test_plugin_that_is_not_a_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(tmp_path, "fake-leo-text", {"text": "fake_leo_text:NOT_A_BOT"}, {"fake_leo_text": PLUGIN_MODULE})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BotError) as info:
        BotRegistry().resolve("text")
    assert str(info.value) == "bot 'text': 'just text' is not a bot: a bot class subclasses leo_runtime.Bot"


# --------------------------------------------------------------------------------------------
# register_bot
# --------------------------------------------------------------------------------------------


def test_register_bot_sets_the_name_and_rejects_a_second_class() -> None:
    @register_bot("leo_reg_unique")
    class First(Bot):
        pass

    assert First.name == "leo_reg_unique"
    assert registered_bots()["leo_reg_unique"] is First

    class Second(Bot):
        pass

    with pytest.raises(BotError) as info:
        register_bot("leo_reg_unique")(Second)
    message = str(info.value)
    assert message.startswith("bot name 'leo_reg_unique' is registered twice: by ")
    assert "First" in message and "Second" in message
    assert registered_bots()["leo_reg_unique"] is First


def test_register_bot_again_for_the_same_class_is_harmless() -> None:
    class Again(Bot):
        pass

    register_bot("leo_reg_again")(Again)
    assert register_bot("leo_reg_again")(Again) is Again


def test_register_bot_cannot_take_a_built_in_name() -> None:
    class MyFilter(Bot):
        pass

    with pytest.raises(BotError, match="bot name 'filter' is registered twice"):
        register_bot("filter")(MyFilter)
    assert BotRegistry().resolve("filter") is Filter


def test_register_bot_checks_the_class() -> None:
    with pytest.raises(BotError, match=r"is not a subclass of leo_runtime\.Bot"):
        register_bot("leo_reg_plain")(object)  # type: ignore[arg-type]

    class Odd(Bot):
        kind = "transformer"

    with pytest.raises(BotError, match="kind must be one of source, processor, sink, not 'transformer'"):
        register_bot("leo_reg_odd")(Odd)


# --------------------------------------------------------------------------------------------
# A project's own `bots` folder
# --------------------------------------------------------------------------------------------


def test_a_project_bots_package_never_hides_the_built_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What `leo init` scaffolds: a project folder with bots/priority.py. Even as a real `bots`
    # package first on sys.path, it cannot hide the built-ins: they live in `leo_runtime.bots`.
    write(tmp_path, "bots/__init__.py", "")
    bot_file(tmp_path, "bots/shout.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bots", raising=False)
    registry = BotRegistry()
    assert registry.resolve("filter").__module__ == "leo_runtime.bots.filter"
    assert registry.resolve("./bots/shout.py:Shout", tmp_path).__name__ == "Shout"
    assert registry.resolve("bots.shout:Shout", tmp_path).__name__ == "Shout"


def test_no_top_level_bots_or_cli_module_is_installed() -> None:
    import importlib.util

    import leo_runtime

    assert bots.__name__ == "leo_runtime.bots"
    assert Path(bots.__file__).parent.name == "bots"
    # Whatever `bots` / `cli` resolve to from here, it is never something leo-runtime installed.
    for name in ("bots", "cli"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            assert "site-packages" not in spec.origin, spec.origin
    assert Path(leo_runtime.__file__).parent.name == "leo_runtime"


def test_validate_survives_a_settings_validator_that_exits(tmp_path: Path) -> None:
    from .conftest import CUSTOM_BOTS, leo

    write(tmp_path, "bots/custom.py", CUSTOM_BOTS)
    write(tmp_path, "pipelines.yaml", """
        version: 1
        pipelines:
          p:
            bots:
              - {id: e, use: ./bots/custom.py:ExitingSettings, in: a, out: b, with: {level: 1}}
        """)
    result = leo("validate", cwd=tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "pipelines.yaml:5:" in result.stderr and "checking the settings of './bots/custom.py:ExitingSettings' failed: " \
        "SystemExit(9)" in result.stderr
