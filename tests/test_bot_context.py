"""What a custom bot can see: its own narrow, typed context, never a partner's secret or data.

Seen: `StoreView`, the read-only view documented for bots, had `due_deliveries`, which returned
every partner's webhook secret to any custom bot.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import leo_runtime
from leo_runtime import Bot, BotSettings
from leo_runtime.bot import BotContext, SystemContext, gets_system_view
from leo_runtime.bots.batcher import Batcher, BatcherSettings
from leo_runtime.bots.change_detector import ChangeDetector, ChangeDetectorSettings
from leo_runtime.bots.file_reader import FileReader, FileReaderSettings
from leo_runtime.bots.filter import Filter, FilterSettings
from leo_runtime.bots.stream_writer import StreamWriter, StreamWriterSettings
from leo_runtime.bots.webhook_sender import WebhookSender, WebhookSenderSettings
from leo_runtime.config import load_config
from leo_runtime.delivery import webhook_bots
from leo_runtime.objects import ingest
from leo_runtime.partners import create_partner
from leo_runtime.runs import bot_context
from leo_runtime.runtime import Runtime

from .conftest import CUSTOM_BOTS, Project, async_wait_until, payloads_of, run_with

ROOT = Path(__file__).resolve().parents[1]


def partner_with_a_webhook_and_a_stream(store: Any) -> tuple[str, str, str]:
    """A partner with a webhook and a stream: (the webhook's secret, its id, the stream's
    partition queue, holding the partner's data)."""
    from leo_runtime.delivery.streams import create_stream
    from leo_runtime.delivery.webhooks import new_secret, new_webhook_id, router_id
    from leo_runtime.store.base_webhooks import NewWebhook
    from leo_runtime.timeutil import now_ms

    partner = create_partner(store, "acme")[0]
    secret = new_secret()
    webhook = store.create_webhook(NewWebhook(new_webhook_id(), partner.id, "inventory", "inventory.changes",
                                              router_id("inventory"), None, "http://127.0.0.1:9/hook", secret, 1000,
                                              "changes", now_ms()))
    ingest(store, "inventory", "sku", [{"sku": "S1", "quantity": 1}])
    stream = create_stream(store, partner.id, ["inventory"], 86400, object_type="inventory", query=None, partitions=1,
                           start_at="earliest")
    partition = f"streams.{stream.id}.0"
    store.append(partition, [{"secret_data": "only for acme"}])
    return secret, webhook.id, partition


def with_probe(project: Project, *bots: str) -> None:
    """A project whose pipeline ``p`` holds the probing custom bot and `bots` (YAML flow mappings)."""
    project.write(CUSTOM_BOTS, "bots/custom.py")
    lines = "".join(f"\n      - {bot}" for bot in bots)
    project.write(f"version: 1\nobject_types:\n  inventory: {{key: sku}}\npipelines:\n  p:\n    bots:{lines}\n")


def test_a_custom_bot_gets_its_own_narrow_context_and_nothing_of_a_partner(project: Project) -> None:
    with_probe(project, "{id: probe, use: ./bots/custom.py:Probe, in: probe.in, out: probe.out}",
               "{id: other, use: filter, in: other.in, out: other.out, with: {query: {}}}")
    store = project.store()
    secret, webhook, partition = partner_with_a_webhook_and_a_stream(store)
    assert store.webhook(webhook).secret == secret  # type: ignore[union-attr]  # what must stay out of reach
    store.append("other.in", [{"x": 1}])
    store.append("probe.in", [{"other": "other.in", "partition": partition, "webhook": webhook}])

    async def body(runtime: Runtime) -> None:
        await async_wait_until(lambda: payloads_of(store, "probe.out"), what="the probe's report")

    run_with(project, body)
    [seen] = payloads_of(store, "probe.out")
    assert (seen["context"], seen["store"], seen["has_config"]) == ("BotContext", "BotStoreView", False)
    assert seen["object_types"] == {"inventory": "sku"}
    assert (seen["own_in"], seen["own_checkpoint"], seen["object"]) == ("1", "0", repr({"sku": "S1", "quantity": 1}))
    for name in ("other_queue", "partner_partition"):
        assert seen[name].startswith("BotError: bot 'probe' reads only its own queues (probe.in, probe.out), not "), seen
    for name in ("due_deliveries", "webhook", "queues", "checkpoints"):
        assert seen[name].startswith("AttributeError"), (name, seen[name])
    report = str(seen) + str(store.bot("probe").last_error)  # type: ignore[union-attr]
    assert secret not in report and "only for acme" not in report


def test_only_the_delivery_bots_shipped_with_leo_get_the_system_view(project: Project) -> None:
    with_probe(project, "{id: probe, use: ./bots/custom.py:Probe, in: a, out: b}",
               "{id: batches, use: batcher, in: a, out: c, with: {interval: 60}}",
               "{id: low, use: filter, in: a, out: d, with: {query: {}}}")
    config = load_config(project.file)
    store = project.store()
    contexts = {spec.id: bot_context(spec, store, config) for spec in config.bots}
    assert type(contexts["probe"]) is BotContext  # it asked (system_view = True): custom code never gets it
    assert type(contexts["low"]) is BotContext
    assert isinstance(contexts["batches"], SystemContext) and contexts["batches"].config is config
    for cls in (webhook_bots.WebhookRouter, webhook_bots.WebhookBatcher, webhook_bots.PartnerWebhookSender, Batcher,
                WebhookSender):
        assert gets_system_view(cls), cls


# -- Bot is generic: each built-in's settings have their own type -------------------------------------------
@pytest.mark.parametrize(
    ("cls", "settings"),
    [(Filter, FilterSettings), (Batcher, BatcherSettings), (WebhookSender, WebhookSenderSettings),
     (StreamWriter, StreamWriterSettings), (ChangeDetector, ChangeDetectorSettings), (FileReader, FileReaderSettings)],
)
def test_a_built_in_bots_settings_are_its_own_type(cls: type[Bot[Any]], settings: type[BotSettings]) -> None:
    assert cls.Settings is settings


def test_bot_of_settings_names_the_settings_class() -> None:
    class Mine(BotSettings):
        field: str

    class MyBot(Bot[Mine]):
        pass

    class Nested(Bot):
        class Settings(Bot.Settings):
            other: int = 1

    assert MyBot.Settings is Mine and Nested.Settings.__name__ == "Settings"
    assert MyBot(Mine(field="x"), BotContext(bot_id="b", pipeline="p", base_dir=Path("."))).settings.field == "x"


def test_the_built_in_bots_type_check_without_ignores(tmp_path: Path) -> None:
    for path in sorted((ROOT / "bots").glob("*.py")):
        assert "type: ignore" not in path.read_text(), path
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports", "--cache-dir",
         str(tmp_path / "mypy"), "bots", "leo_runtime/bot.py", "leo_runtime/storeview.py",
         "leo_runtime/delivery/webhook_bots.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the system bots live with the delivery code; nothing registers itself by import -------------------------
def test_the_system_bots_live_in_delivery_and_bots_holds_the_user_facing_built_ins() -> None:
    for cls in (webhook_bots.WebhookRouter, webhook_bots.WebhookBatcher, webhook_bots.PartnerWebhookSender):
        assert cls.__module__ == "leo_runtime.delivery.webhook_bots"
    modules = sorted(path.stem for path in (ROOT / "bots").glob("*.py") if path.stem != "__init__")
    assert modules == ["batcher", "change_detector", "file_reader", "filter", "stream_writer", "webhook_sender"]
    for path in (ROOT / "bots").glob("*.py"):
        assert "class Webhook" not in path.read_text().replace("class WebhookSender", ""), path


def _imports(path: Path, module: str) -> set[str]:
    """Every leo_runtime module `path` imports, anywhere in it (functions too), except under
    ``if TYPE_CHECKING:``; a submodule's import counts its parent packages below leo_runtime
    (their ``__init__`` runs first), but not the packages of `module` itself."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name.count(".") >= 1 and name.startswith("leo_runtime."):
                found.add(name)
                name = name.rpartition(".")[0]
    # A module's own packages are being imported already when it runs: importing them is no edge.
    return {name for name in found if not module.startswith(name + ".")}


def all_modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in ((ROOT / "leo_runtime", "leo_runtime"), (ROOT / "bots", "leo_runtime.bots")):
        for path in folder.rglob("*.py"):
            if "scaffold" in path.parts:
                continue
            relative = path.relative_to(folder).with_suffix("")
            parts = [part for part in relative.parts if part != "__init__"]
            found[".".join([prefix, *parts])] = path
    found.pop("leo_runtime")  # the public surface, imported first by every import of leo_runtime.X
    return found


def test_no_module_imports_back_into_a_module_that_imports_it() -> None:
    modules = all_modules()
    graph = {name: {target for target in _imports(path, name) if target in modules and target != name}
             for name, path in modules.items()}
    # Tarjan's strongly connected components: a cycle is one with more than one module.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported on its own, first, in a fresh process (forked after the third-party
    libraries are loaded, so it takes seconds): no order of imports can break."""
    script = """
import os, sys
import fastapi, pydantic, yaml, orjson, httpx, uvicorn, watchdog.observers, typer, rich, croniter, sqlite_utils
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", failed)
sys.exit(1 if failed else 0)
"""
    names = sorted(all_modules())
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert leo_runtime.__version__
