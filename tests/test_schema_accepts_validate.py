"""`leo schema` accepts what `leo validate` accepts, so an editor never marks a valid file red:
every file validate accepts (the bundled example, the scaffold, the README's, and variants with
each scalar written as a `${...}` interpolation or as text) validates against the schema with
jsonschema; and a set of broken files validate rejects, the schema rejects too."""

from __future__ import annotations

import copy
import datetime
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

import leo_runtime.bots  # noqa: F401  (the built-ins)
from leo_runtime.cli import app
from leo_runtime.config import load_config
from leo_runtime.errors import ConfigError
from leo_runtime.registry import BotRegistry

from .conftest import REPO

pytestmark = pytest.mark.usefixtures("isolated_imports")
_REGISTRY = BotRegistry()  # one for every load: resolving names is not what these tests are about

CUSTOM = '''\
from leo_runtime import Bot, SinkBot


class Limit(Bot):
    class Settings(Bot.Settings):
        limit: int = 5
        ratio: float = 0.5
        strict: bool = False
        mode: str = "fast"

    def process(self, events, ctx):
        yield from events


class ErpPush(SinkBot):
    def process(self, events, ctx):
        return None
'''

CUSTOM_PIPELINES = """\
version: 1
server: {port: "8765", allow_private_callbacks: "yes", get_object_rate: "2.5"}
webhooks: {timeout: 15, retry_schedule: ["5", 30]}
pipelines:
  p:
    bots:
      - id: reader
        use: file_reader
        with: {path: data}
        out: raw
        schedule: 5s
      - id: limit
        use: ./bots/custom.py:Limit
        in: raw
        out: limited
        with: {limit: "${LIMIT:-7}", ratio: "1e-1", strict: on, mode: "${MODE:-slow}"}
        batch: {records: "100", seconds: PT5S}
        start: 2026-11-26T00:00:00Z
"""


def schema_for(file: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema", "-f", str(file)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def as_an_editor_reads(text: str) -> Any:
    """The file's data as a YAML editor hands it to a JSON Schema: no interpolation, times as text."""
    return _texts(yaml.safe_load(text))


def _texts(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_texts(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def replaced(data: Any, path: tuple, value: Any) -> Any:
    copied = copy.deepcopy(data)
    target = copied
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copied


def project(tmp_path: Path, text: str) -> Path:
    """A project folder: `text` as its pipelines.yaml, beside every custom bot the files here name."""
    priority = (REPO / "leo_runtime" / "scaffold" / "bots" / "priority.py").read_text()
    for folder, name, code in [("bots", "custom.py", CUSTOM), ("bots", "erp.py", CUSTOM), ("bots", "priority.py", priority),
                               ("leo_runtime/scaffold/bots", "priority.py", priority)]:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_text(code)
    path = tmp_path / "pipelines.yaml"
    path.write_text(text)
    return path


def valid(path: Path) -> bool:
    try:
        load_config(path, env={}, registry=_REGISTRY)
    except ConfigError:
        return False
    return True


def readme_pipelines() -> str:
    section = (REPO / "README.md").read_text().split("## pipelines.yaml", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name", ["pipelines.yaml", "leo_runtime/scaffold/pipelines.yaml", "README.md", "custom"],
)
def test_every_file_validate_accepts_validates_against_the_schema(tmp_path: Path, name: str) -> None:
    if name == "README.md":
        path = project(tmp_path, readme_pipelines())
    elif name == "custom":
        path = project(tmp_path, CUSTOM_PIPELINES)
    else:
        path = REPO / name
    assert valid(path), name
    text = path.read_text()
    schema = jsonschema.Draft202012Validator(schema_for(path))  # the same bots in every variant: the same schema
    schema.validate(as_an_editor_reads(text))

    # Each scalar written as a ${...} interpolation of itself, and numbers and booleans as text:
    # whatever validate accepts, the schema accepts.
    data = as_an_editor_reads(text)
    checked = accepted = 0
    for leaf, value in leaves(data):
        if value is None:
            continue
        shown = json.dumps(value) if not isinstance(value, str) else value
        variants = [f"${{LEO_SCHEMA_TEST:-{shown}}}"]
        if isinstance(value, bool | int | float):
            variants.append(shown)
        for variant in variants:
            candidate = tmp_path / "variant" / "pipelines.yaml"
            if not candidate.exists():
                project(candidate.parent, "")
            variant_data = replaced(data, leaf, variant)
            candidate.write_text(yaml.safe_dump(variant_data, sort_keys=False))
            checked += 1
            if valid(candidate):
                accepted += 1
                schema.validate(variant_data)
    assert accepted > 20 and accepted >= checked * 0.9, (accepted, checked)


BROKEN = [
    pytest.param("version: 1\n", "version: 2\n", id="version"),
    pytest.param("server: {port: \"8765\"", "sever: {port: \"8765\"", id="unknown-top-level-key"),
    pytest.param('port: "8765"', "port: eighty", id="port-not-a-number"),
    pytest.param("        out: raw\n", "        ot: raw\n", id="unknown-bot-field"),
    pytest.param("        use: file_reader\n", "", id="missing-use"),
    pytest.param("with: {path: data}", "with: {path: data, patern: x}", id="unknown-built-in-setting"),
    pytest.param("limit: \"${LIMIT:-7}\"", "limitt: 7", id="unknown-custom-setting"),
    pytest.param("limit: \"${LIMIT:-7}\"", "limit: seven", id="custom-setting-type"),
    pytest.param("strict: on", "strict: maybe", id="custom-boolean"),
    pytest.param('records: "100"', "records: 0", id="bound"),
    pytest.param("retry_schedule: [\"5\", 30]", "retry_schedule: 5", id="list"),
]


@pytest.mark.parametrize(("old", "new"), BROKEN)
def test_a_file_validate_rejects_the_schema_rejects(tmp_path: Path, old: str, new: str) -> None:
    assert old in CUSTOM_PIPELINES
    path = project(tmp_path, CUSTOM_PIPELINES.replace(old, new, 1))
    assert not valid(path)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_an_editor_reads(path.read_text()), schema_for(path))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("fields: {quantity: integer", "fields: {quantity: int", id="field-type"),
        pytest.param("kind: json_dir", "kind: json_folder", id="source-kind"),
        pytest.param("snapshot: full", "snapshot: fulll", id="snapshot"),
        pytest.param("{quantity: {lt: 5}", "{quantity: {less: 5}", id="query-operator"),
    ],
)
def test_broken_built_in_settings_are_rejected_by_both(tmp_path: Path, old: str, new: str) -> None:
    text = readme_pipelines()
    assert old in text, old
    path = project(tmp_path, text.replace(old, new, 1))
    assert not valid(path)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_an_editor_reads(path.read_text()), schema_for(path))


def test_the_schema_has_the_settings_of_the_files_custom_bots(tmp_path: Path) -> None:
    path = project(tmp_path, CUSTOM_PIPELINES)
    branches = {branch["if"]["properties"]["use"]["const"]: branch["then"]["properties"]["with"]
                for branch in schema_for(path)["$defs"]["BotConfig"]["allOf"]}
    assert branches["./bots/custom.py:Limit"]["title"] == "./bots/custom.py:Limit settings"
    assert set(branches["./bots/custom.py:Limit"]["properties"]) == {"limit", "ratio", "strict", "mode"}
    assert "./bots/custom.py:Limit" not in schema_for(tmp_path / "missing.yaml")["$defs"]["BotConfig"]["properties"]["use"].get(
        "examples", [])
