"""A real `leo run`: environment values and URL passwords never reach its log or `leo status`,
and a bot error full of rich markup is printed as written."""

from __future__ import annotations

import pytest

from ..conftest import CUSTOM_BOTS, FILTER_PIPELINE, Project, leo, payloads_of, wait_until

TOKEN = "tok_live_51HxyzSECRET"

EXPLODING = """
version: 1
pipelines:
  boom:
    bots:
      - id: exploder
        use: ./bots/custom.py:Explode
        in: things
        out: done
"""


def test_a_reload_error_names_the_variable_not_its_value(project: Project, leo_run) -> None:
    project.write(FILTER_PIPELINE)
    store = project.store()
    run = leo_run(project, "--no-http", env={"API_TOKEN": TOKEN})
    run.wait_ready()
    project.file.write_text(FILTER_PIPELINE.lstrip().replace("version: 1", "version: 1\nretention: ${API_TOKEN}"))
    wait_until(lambda: "changed but is invalid" in run.log(), what="the reload error")
    assert "retention (from ${API_TOKEN}): invalid duration" in run.log()
    assert TOKEN not in run.log()
    store.append("inventory.in", [{"quantity": 1}])
    wait_until(lambda: payloads_of(store, "inventory.low") == [{"quantity": 1}], what="the old pipeline")
    assert run.stop() == 0
    assert TOKEN not in run.log()


@pytest.mark.sqlite_file
def test_a_bot_error_is_shown_verbatim_without_its_password(project: Project, leo_run) -> None:
    project.write(EXPLODING)
    project.write(CUSTOM_BOTS, "bots/custom.py")
    store = project.store()
    run = leo_run(project, "--no-http")
    run.wait_ready()
    nasty = "[/x] [bold]x[/bold] :smile: http://leo:hunter2@partner.example/v1"
    store.append("things", [{"boom": True, "id": nasty}])
    wait_until(lambda: "[/x] [bold]x[/bold] :smile:" in run.log(), what="the bot's error in the log")
    assert "http://leo:***@partner.example/v1" in run.log() and "hunter2" not in run.log()

    status = leo("status", "-f", str(project.file), cwd=project.root, env={"COLUMNS": "500", "LEO_STORE": ""})
    assert status.returncode == 0, status.stderr
    assert "boom on [/x] [bold]x[/bold] :smile: http://leo:***@partner.example/v1" in status.stdout
    assert "hunter2" not in status.stdout + status.stderr
    assert run.stop() == 0
