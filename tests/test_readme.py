"""The README's quick start is what CI runs, and the bundled example is valid."""

from __future__ import annotations

import re

from .conftest import REPO, leo


def test_quick_start_is_exactly_two_commands_that_make_their_own_virtualenv() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", quick_start, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    install_and_run, test = commands
    assert install_and_run.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert install_and_run.endswith(".venv/bin/leo run")
    assert test.startswith("python3 -m venv .venv && .venv/bin/pip install -e '.[test]'")
    assert test.endswith(".venv/bin/pytest -n auto")


def test_ci_runs_the_readme_test_command() -> None:
    import subprocess

    readme = (REPO / "README.md").read_text()
    printed = subprocess.run([str(REPO / ".ci" / "run"), "--print"], capture_output=True, text=True, check=True)
    command = printed.stdout.strip()
    assert command in readme.split("## Quick start", 1)[1].split("```", 2)[1]
    assert command.endswith(".venv/bin/pytest -n auto")


def test_the_bundled_pipelines_file_is_valid() -> None:
    result = leo("validate", "-f", str(REPO / "pipelines.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
