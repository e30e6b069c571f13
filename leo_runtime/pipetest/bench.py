"""A test bench: a temporary store where bots run as `leo run` runs them, in this process.

Each bot is driven through `BotWork`, the code `leo run`'s runner drives: the same context, the
same transactions (outputs, checkpoint, state and dead letters commit together), the same
counting of failed runs before an event is set aside (`PoisonWatch`). What the bench leaves out
is what a test does not need: leases held by other processes, waiting (a failed run is tried
again at once, not after a backoff), file watching and HTTP.

Time stands still on a bench (`freeze_clock`) unless a test moves it on, so change records,
timestamps and batches come out the same on every run. Bots that would act outside (a mocked
bot, a ``webhook_sender``) are replaced by a `Recorder`: it keeps what it is handed. Nothing
here opens a network connection (see `no_network`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..bot import Bot, BotSettings, SinkBot
from ..botcalls import clip, error_text
from ..config import BotSpec, Config
from ..errors import CheckpointMoved, LeoError
from ..events import Event, dumps
from ..runs import BotWork, EventFailed, PoisonWatch, RunResult, StartFailed, bot_context
from ..store import Store, open_store
from ..store.base import DeadLetterInfo
from ..timeutil import freeze_clock, now_ms

LEASE_TTL_MS = 10 * 365 * 86400 * 1000  # a bench holds its bots' leases for good
MAX_RUNS = 100_000  # runs of one bot in one settle: past it, the bots feed each other without end
_PAGE = 10_000


class BenchError(LeoError):
    """The bench cannot go on (its bots never settle, a store it cannot make)."""


class Recorder(SinkBot):
    """Stands in for a mocked bot (and for bots that would act outside, such as a
    ``webhook_sender``): keeps every payload it is handed, in order, and does nothing else."""

    name = "recorder"
    description = "keep what it is handed (leo test)"

    def __init__(self, settings: BotSettings, ctx: Any) -> None:
        super().__init__(settings, ctx)
        self.calls: list[Any] = []

    def process(self, events: Iterator[Event], ctx: Any) -> None:
        self.calls.extend(event.payload for event in events)


class BenchBot:
    """One bot on a bench: its `BotWork`, committed state and failures."""

    def __init__(self, bench: Bench, spec: BotSpec) -> None:
        self.bench = bench
        self.spec = spec
        self.ctx = bot_context(spec, bench.store, bench.config)
        self.work = BotWork(spec, bench.store, bench.owner, self.ctx, bench.config.model.retention)
        self.poison = PoisonWatch(spec)
        self.state_json = "{}"
        self.instance: Bot | None = None
        self.error: str | None = None  # why it stopped (a test failure)
        self.exception: Exception | None = None  # what it raised then
        self.failures = 0
        bench.store.ensure_bot(spec.id, spec.pipeline)
        if not bench.store.acquire_lease(spec.id, bench.owner, LEASE_TTL_MS):
            raise BenchError(f"bot '{spec.id}': cannot take its lease on the bench's store")

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def calls(self) -> list[Any]:
        """What a recorder was handed (empty for any other bot)."""
        return self.instance.calls if isinstance(self.instance, Recorder) else []

    def start(self) -> bool:
        """Construct and set the bot up (as `leo run` does before its first run)."""
        if self.instance is not None or self.error is not None:
            return self.error is None
        try:
            self.instance, _ = self.work.prepare(None)
        except StartFailed as exc:
            self.instance = exc.bot
            self.error = self.bench.rename(clip(error_text(exc)))
            self.exception = exc
            return False
        return True

    def run(self) -> RunResult | None:
        """One run (a page of its queue, or a source's produce). None when it failed: then
        `error` says why when the bot stops there, else it is tried again (a dead letter due)."""
        if not self.start():
            return None
        run = self.work.run_source if self.spec.kind == "source" else self.work.run_queue
        try:
            result = run(self.instance, self.state_json, self.poison.due)  # type: ignore[arg-type]
        except CheckpointMoved:
            self.poison.reset()
            return None
        except Exception as exc:
            message = clip(error_text(exc))
            self.failures = self.bench.store.record_failure(self.id, message)
            self.poison.failed(exc, message)
            if self.poison.on_error is None or not isinstance(exc, EventFailed):
                self.error = self.bench.rename(message)  # it would fail the same way again: the test fails
                self.exception = exc
            return None
        self.state_json = result.state_json
        self.poison.committed(result)
        self.failures = 0
        return result

    def catch_up(self) -> bool:
        """Run until the bot is not behind (or stops failing for good); True when it did anything."""
        moved = False
        for _ in range(MAX_RUNS):
            if self.error is not None:
                return moved
            result = self.run()
            if result is None:
                continue  # tried again at once: with on_error, until the event is set aside
            moved = moved or result.processed > 0 or result.dead_lettered is not None
            if not result.behind:
                return moved
        raise BenchError(f"bot '{self.id}' was still behind after {MAX_RUNS:,} runs")

    def close(self) -> None:
        if self.instance is not None:
            with contextlib.suppress(Exception):
                self.instance.close()


class Bench:
    """A temporary store and the bots of one test (see the module docstring)."""

    def __init__(self, config: Config, *, start_ms: int | None, root: Path | None = None) -> None:
        """`root`: a folder the caller removes, shared by many benches (each keeps its files
        under a name of its own: making and removing a folder per test costs more than the test)."""
        self.config = config
        self._own_dir = root is None
        self.dir = Path(tempfile.mkdtemp(prefix="leo-test-")) if root is None else root
        self.name = f"bench-{secrets.token_hex(6)}"
        self.owner = f"leo-test:{secrets.token_hex(4)}"
        self.frozen = start_ms is not None  # None: the wall clock runs (bot authors' own tests)
        self._previous_clock = freeze_clock(start_ms) if self.frozen else None
        try:
            self.store: Store = open_store(f"sqlite:///{self.name}.db?synchronous=off", self.dir)
        except BaseException:
            if self.frozen:
                freeze_clock(self._previous_clock)
            self._remove_files()
            raise
        self._closed = False
        self.bots: list[BenchBot] = []
        self.sources: list[BenchBot] = []  # ticking sources (a test webhook's batcher): run every round
        self._renames: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = []

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        for bot in [*self.bots, *self.sources]:
            bot.close()
        with contextlib.suppress(Exception):
            self.store.close()
        if self.frozen:
            freeze_clock(self._previous_clock)
            self.frozen = False
        self._remove_files()

    def _remove_files(self) -> None:
        self._closed = True
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        for suffix in (".db", ".db-wal", ".db-shm"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f"{self.name}{suffix}").unlink()
        if (self.dir / self.name).exists():
            shutil.rmtree(self.dir / self.name, ignore_errors=True)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def add(self, spec: BotSpec, *, record: bool = False, source: bool = False) -> BenchBot:
        """Put a bot on the bench (`record`: as a `Recorder` of what it is handed; `source`: run
        at every round, as system bots that seal on time are)."""
        if record:
            spec = _replaced(spec, Recorder, BotSettings())
        bot = BenchBot(self, spec)
        (self.sources if source else self.bots).append(bot)
        return bot

    def bot(self, bot_id: str) -> BenchBot:
        return next(bot for bot in [*self.bots, *self.sources] if bot.id == bot_id)

    # -- input ----------------------------------------------------------------------------------
    def put(self, queue: str, payloads: Sequence[Any]) -> None:
        """Append `payloads` to `queue` in one transaction (as ``leo queues put`` does)."""
        if payloads:
            self.store.append_texts(queue, [dumps(payload) for payload in payloads])

    def objects_folder(self, bot_id: str) -> Path:
        """Where a change detector fed by the test reads (a json_dir of the bench)."""
        return self.dir / self.name / bot_id

    def feed(self, bot_id: str, name: str, content: bytes, *,
             rename: Callable[[re.Match[str]], str] | None = None) -> BenchBot:
        """Make `content` the whole of the detector's folder (as file `name`) and run it once:
        one complete read, as a json_dir source does when its folder changes."""
        folder = self.objects_folder(bot_id)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        path = folder / name
        path.write_bytes(content)
        if rename is not None:
            self._renames.append((re.compile(re.escape(str(path)) + r"(?::(\d+))?"), rename))
        bot = self.bot(bot_id)
        bot.catch_up()
        return bot

    def rename(self, message: str) -> str:
        """A bot's message with the bench's own files named as the test wrote them."""
        for pattern, replace in self._renames:
            message = pattern.sub(replace, message)
        return message

    # -- running --------------------------------------------------------------------------------
    def settle(self, max_rounds: int = 10_000) -> None:
        """Run every bot, in order, until none has anything left to do."""
        for _ in range(max_rounds):
            before = self.store.last_position()
            moved = False
            for bot in self.bots:
                if bot.spec.kind != "source":
                    moved = bot.catch_up() or moved
            for bot in self.sources:
                moved = bot.catch_up() or moved
            if not moved and self.store.last_position() == before:
                return
        raise BenchError(f"the bots did not settle after {max_rounds:,} rounds (do they feed each other?)")

    def advance(self, milliseconds: int) -> None:
        """Move the clock on, then let the bots act on it (intervals pass, batches seal)."""
        freeze_clock(now_ms() + max(0, milliseconds))
        self.settle()

    def pass_intervals(self, webhook_ids: Sequence[str]) -> None:
        """Move the clock to when the last of these webhooks (or batcher subscriptions) is due,
        so that each seals what it holds; then settle."""
        due = [record.next_run_at for record in map(self.store.webhook, webhook_ids) if record is not None]
        if due and max(due) > now_ms():
            self.advance(max(due) - now_ms())

    # -- partner webhooks of a test ----------------------------------------------------------------
    def add_webhook(self, name: str, object_type: str, query: Mapping[str, Any] | None, interval_ms: int,
                    mode: str) -> str:
        """Register a partner webhook (partner ``leo-test``) and put the system bots that route
        and seal it on the bench (its notifications are not sent). Returns its id."""
        from ..delivery.partner_webhooks import PartnerWebhooks
        from ..delivery.webhooks import new_secret, new_webhook_id, router_id
        from ..jsonio import canonical
        from ..store.base_webhooks import NewWebhook

        partner = self.store.partner("leo-test") or self.store.create_partner(
            "leo-test", hashlib.sha256(secrets.token_bytes(16)).digest(), None)
        webhook_id = new_webhook_id()
        query_json = canonical(dict(query)).decode() if query else None
        self.store.create_webhook(NewWebhook(webhook_id, partner.id, object_type, f"{object_type}.changes",
                                             router_id(object_type), query_json, f"https://{name}.leo-test.invalid/",
                                             new_secret(), interval_ms, mode, now_ms()))
        known = {bot.id for bot in [*self.bots, *self.sources]}
        for spec in PartnerWebhooks().specs(self.store, self.config):
            if spec.id in known or spec.id == "webhooks:sender":
                continue
            self.add(spec, source=spec.kind == "source")
        return webhook_id

    # -- what happened --------------------------------------------------------------------------
    def events(self, queue: str, after: int = 0) -> list[Event]:
        """Every event of `queue` after position `after`, oldest first."""
        events: list[Event] = []
        while page := self.store.read(queue, after, _PAGE):
            events.extend(page)
            after = page[-1].seq
        return events

    def dead_letters(self, queue: str) -> dict[int, DeadLetterInfo]:
        """The dead letters of `queue`, by their position there."""
        return {info.position: info for info in self.store.dead_letters(queue, include_redriven=True)}

    def batches(self, webhook_id: str) -> list[tuple[str, list[Any]]]:
        """The batches a webhook (or a batcher's subscription) sealed, oldest first, each with
        its records as a partner downloads them."""
        record = self.store.webhook(webhook_id)
        if record is None:
            return []
        result = []
        for listing in reversed(self.store.batches(record.rid, limit=10_000)):
            batch = self.store.batch(listing.id)
            if batch is None:
                continue
            lines: list[Any] = []
            after: str | int | None = None
            while page := self.store.batch_page(batch, after, _PAGE):
                lines.extend(json.loads(text) for _, text in page)
                after = page[-1][0]
            result.append((listing.id, lines))
        return result


def _replaced(spec: BotSpec, cls: type[Bot], settings: BotSettings) -> BotSpec:
    return dataclasses.replace(spec, cls=cls, settings=settings)


def fed_detector(spec: BotSpec, folder: Path) -> BotSpec:
    """A change detector reading the bench's folder instead of its own source (the test hands
    it objects); its object type, snapshot mode and everything else stay as configured."""
    from ..sources.json_dir import JsonDirSettings

    settings = spec.settings.model_copy(update={"source": JsonDirSettings(kind="json_dir", path=str(folder))})
    return dataclasses.replace(spec, settings=settings)


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """While open, looking a host up or connecting to anything but a local socket file fails
    with an error that says why: bot code under `leo test` must not reach outside (mock the bot)."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def refused(address: Any) -> ConnectionRefusedError:
        return ConnectionRefusedError(
            f"leo test touches no network (a bot tried to reach {address!r}): mock it with mock: {{BOT_ID: record}}"
        )

    def refuse(sock: socket.socket, address: Any) -> Any:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return connect(sock, address)
        raise refused(address)

    def refuse_ex(sock: socket.socket, address: Any) -> Any:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return connect_ex(sock, address)
        raise refused(address)

    def refuse_lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise refused(f"{host}:{port}" if port is not None else host)

    socket.socket.connect, socket.socket.connect_ex = refuse, refuse_ex  # type: ignore[method-assign]
    socket.getaddrinfo = refuse_lookup  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo
