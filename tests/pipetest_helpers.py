"""A project to run `leo test` on: a pipelines.yaml with every kind of bot a test file can name,
custom bots beside it, and the test files each test writes. Positions in messages are derived
from the test file's text (`Shop.at`), so an assertion says which character a problem points at."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from leo_runtime.cli import app

PIPELINES = """\
version: 1
object_types:
  inventory: {key: sku, fields: {quantity: integer}}
pipelines:
  feed:
    bots:
      - id: detector
        use: change_detector
        with: {object_type: inventory, source: {kind: json_dir, path: data}, snapshot: full}
      - id: low-stock
        use: filter
        in: inventory.changes
        with: {query: {quantity: {lt: 5}}}
        out: inventory.low_stock
      - id: tagger
        use: ./bots/shop.py:Tagger
        in: inventory.low_stock
        with: {label: "${LABEL:-plain}"}
        out: inventory.tagged
        on_error: {dead_letter: inventory.tag_failed, after: 3}
      - id: erp-push
        use: ./bots/shop.py:ErpPush
        in: inventory.tagged
  erp:
    bots:
      - id: erp-batches
        use: batcher
        in: inventory.low_stock
        with: {interval: 5m}
        out: erp.batches
      - id: erp-notify
        use: webhook_sender
        in: erp.batches
        with: {url: "${ERP_URL}", secret: whsec_ZGV2LW9ubHktc2VjcmV0LXNldC1FUlBfV0VCSE9PS19TRUNSRVQ=}
"""

BOTS = '''\
import httpx

from leo_runtime import Bot, SinkBot


class Tagger(Bot):
    """Tags each change record's data; counts what it saw in its state; fails on `boom`."""

    class Settings(Bot.Settings):
        label: str = "plain"

    def process(self, events, ctx):
        for event in events:
            data = event.payload.get("data", event.payload)
            if data.get("boom"):
                raise ValueError(f"cannot tag {data.get('sku')}")
            ctx.state["seen"] = ctx.state.get("seen", 0) + 1
            yield {"sku": data.get("sku"), "tag": self.settings.label, "seen": ctx.state["seen"]}


class ErpPush(SinkBot):
    """Acts outside: POSTs each item to the ERP."""

    def process(self, events, ctx):
        for event in events:
            httpx.post("http://erp.example.com/items", json=event.payload, timeout=2)
'''

runner = CliRunner()


class Shop:
    """The project (a tmp folder, also the current folder) and its test files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bots").mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        (root / "pipelines.yaml").write_text(PIPELINES)
        (root / "bots" / "shop.py").write_text(BOTS)
        self.texts: dict[str, str] = {}

    def tests(self, text: str, name: str = "shop.leo-test.yaml", *, env: str = "ERP_URL: http://erp.invalid/hook") -> Path:
        """Write a test file (dedented; a file-level env for ${ERP_URL} unless `env` is empty)."""
        body = textwrap.dedent(text).lstrip("\n")
        if env:
            body = f"env: {{{env}}}\n" + body
        self.texts[name] = body
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        return path

    def at(self, marker: str, nth: int = 1, shift: int = 0, name: str = "shop.leo-test.yaml", after: str = "") -> str:
        """``FILE:LINE:COL`` of the `nth` occurrence of `marker` in a test file (after the first
        `after`), moved `shift` characters."""
        text = self.texts[name]
        index = text.index(after) - 1 if after else -1
        for _ in range(nth):
            index = text.index(marker, index + 1)
        index += shift
        line = text.count("\n", 0, index) + 1
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        return f"{name}:{line}:{column}"

    def run(self, *args: str) -> Result:
        """`leo test ARGS` in this process (the project is the current folder)."""
        return runner.invoke(app, ["test", *args])

    def json(self, *args: str) -> dict[str, Any]:
        result = self.run("--json", *args)
        assert result.exit_code in (0, 1, 2), result.output
        return json.loads(result.stdout)
