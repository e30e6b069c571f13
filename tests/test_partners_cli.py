"""`leo partners create|list|revoke` through typer's CliRunner on real stores."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from leo_runtime.cli import app

from .conftest import Project

runner = CliRunner()


def invoke(project: Project, *args: str):
    return runner.invoke(app, ["partners", *args, "-f", str(project.file)], env={"LEO_STORE": ""})


@pytest.fixture
def project_with_store(project: Project) -> Project:
    project.write("version: 1\nobject_types:\n  inventory: {key: sku}\n")
    return project


def test_create_json_prints_name_token_and_scope_once_and_stores_only_the_hash(project_with_store: Project) -> None:
    result = invoke(project_with_store, "create", "acme", "--scope", '{"warehouse": "NYC", "quantity": {"lt": 5}}', "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"name", "token", "scope"}
    assert created["name"] == "acme"
    assert created["scope"] == {"warehouse": "NYC", "quantity": {"lt": 5}}
    store = project_with_store.store()
    assert store.partner("acme").token_hash == hashlib.sha256(created["token"].encode()).digest()
    listed = invoke(project_with_store, "list", "--json")
    assert created["token"] not in listed.output
    assert json.loads(listed.stdout) == [
        {"name": "acme", "scope": created["scope"], "created_at": json.loads(listed.stdout)[0]["created_at"], "revoked_at": None}
    ]


def test_create_prints_the_token_for_people_too(project_with_store: Project) -> None:
    result = invoke(project_with_store, "create", "acme")
    assert result.exit_code == 0
    assert "partner 'acme' created (no scope: it sees every object)" in result.stdout
    assert "shown only this once" in result.stdout
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("leo_")
    assert project_with_store.store().partner("acme").token_hash == hashlib.sha256(token.encode()).digest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", '{"quantity": {"less": 5}}'], "error: --scope: field 'quantity': unknown operator 'less' (did you mean"),
        (["--scope", '{"quantity": {"lt": true}}'], "error: --scope: field 'quantity': operator 'lt' needs a number or a string"),
        (["--scope", "warehouse=NYC"], "error: --scope: not JSON"),
        (["--scope", '["NYC"]'], "error: --scope: a scope is a query: a JSON object of field paths to conditions"),
        (["--scope", '{"a": ' * 200 + "1" + "}" * 200], "error: --scope: nested deeper than 100 levels"),
    ],
)
def test_a_bad_scope_is_exit_1_naming_the_field_and_creates_nothing(project_with_store: Project, args, message) -> None:
    result = invoke(project_with_store, "create", "acme", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert project_with_store.store().partners() == []


@pytest.mark.parametrize("name", ["bad name", "a/b", ".dot", "x" * 201, "ünï"])
def test_a_bad_name_is_exit_1(project_with_store: Project, name: str) -> None:
    result = invoke(project_with_store, "create", name)
    assert result.exit_code == 1
    assert "is not valid: a name holds only letters, digits" in result.output


def test_a_taken_name_is_exit_1(project_with_store: Project) -> None:
    assert invoke(project_with_store, "create", "acme").exit_code == 0
    result = invoke(project_with_store, "create", "acme")
    assert result.exit_code == 1
    assert result.output.strip() == "error: partner 'acme' already exists; choose another name"


def test_revoke_then_list_shows_it_and_unknown_names_are_exit_2(project_with_store: Project) -> None:
    invoke(project_with_store, "create", "acme", "--scope", '{"tag": "[bold]x"}')
    result = invoke(project_with_store, "revoke", "acme")
    assert result.exit_code == 0
    assert result.stdout.startswith("partner 'acme' revoked at ")
    assert project_with_store.store().partner("acme").revoked_at is not None
    table = invoke(project_with_store, "list")
    assert "acme" in table.stdout and "[bold]" in table.stdout  # shown as written, not taken as markup
    missing = invoke(project_with_store, "revoke", "nobody")
    assert missing.exit_code == 2  # a name that names nothing: bad usage, as an unknown bot or webhook
    assert missing.output.strip() == "error: no partner 'nobody'; `leo partners list` shows them"
    close = invoke(project_with_store, "revoke", "acne")
    assert close.exit_code == 2 and "(did you mean 'acme'?)" in close.output


def test_no_arguments_is_bad_usage(project_with_store: Project) -> None:
    assert runner.invoke(app, ["partners", "create"]).exit_code == 2
