"""Packaging: every package is listed in pyproject.toml, and only leo_runtime is installed."""

from __future__ import annotations

import tomllib

from .conftest import REPO


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "leo_runtime").rglob("__init__.py")
        if "scaffold" not in init.parts and "__pycache__" not in init.parts
    } | {"leo_runtime.bots"}
    assert listed == found
    assert all(name == "leo_runtime" or name.startswith("leo_runtime.") for name in listed)


def test_the_built_in_bots_install_under_leo_runtime() -> None:
    package_dir = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert package_dir == {"leo_runtime.bots": "bots"}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"leo": "leo_runtime.cli:main"}


def test_migrations_are_numbered_in_order_without_repeats() -> None:
    from leo_runtime.store.migrations import SQLITE_MIGRATIONS

    versions = [version for version, _, _ in SQLITE_MIGRATIONS]
    assert versions == sorted(set(versions)) == list(range(1, len(versions) + 1))
