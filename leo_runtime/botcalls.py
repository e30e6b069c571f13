"""Calling bot code without letting it stop the runtime.

Bot code may raise anything: ``sys.exit()`` raises `SystemExit`, a stray ``raise
KeyboardInterrupt`` or ``GeneratorExit``, even `asyncio.CancelledError`. Inside asyncio any of
these would end the event loop (or be taken for a cancellation), so every call into bot code goes
through `call_bot`, which turns whatever is not an `Exception` into a `BotCodeError`: that bot's
error, retried with backoff like any other. Only the runtime's own signals stop the runtime.

Each bot's calls run on its own `BotThread`, a daemon thread: a run that never returns cannot
keep the process from exiting once its drain timeout has passed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from .errors import BotError, LeoError
from .safetext import bounded as clip  # a bot's error, cut for logs, the store and `leo status`

T = TypeVar("T")


class BotCodeError(BotError):
    """Bot code raised a `BaseException` that is not an `Exception` (``SystemExit`` and the like).

    ``original`` is what it raised; the message names it (``SystemExit: 3``).
    """

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


def describe(exc: BaseException) -> str:
    """``Type: message`` (or just ``Type`` when the message is empty) for any exception; one
    whose message itself cannot be made is still described."""
    try:
        text = str(exc)
    except BaseException as failure:  # bot code again: its __str__ may raise anything
        text = f"<its message could not be shown: {type(failure).__name__}>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_text(exc: BaseException) -> str:
    """An error as shown to operators: a LeoError's own message, else ``Type: message``."""
    return str(exc) if isinstance(exc, LeoError) else describe(exc)


def show(exc: BaseException) -> str:
    """``repr(exc)`` made safe and clipped (how the registry names an import failure)."""
    try:
        return clip(repr(exc))
    except BaseException:
        return clip(describe(exc))


def reraise_operator_interrupt(exc: BaseException) -> None:
    """Raise `exc` again when it is a Ctrl-C on the main thread (the operator, not bot code):
    anywhere else a KeyboardInterrupt can only come from bot code."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        raise exc


def call_bot(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call bot code; an `Exception` passes through, anything else becomes a `BotCodeError`."""
    try:
        return func(*args, **kwargs)
    except Exception:
        raise
    except BaseException as exc:
        raise BotCodeError(describe(exc), exc) from exc


class BotThread(Executor):
    """An executor with one daemon thread: one bot's calls, in order, on the same thread (so the
    store connection and its page cache stay warm). A call that raises a `BaseException` that is
    not an `Exception` fails its future with a `BotCodeError` instead (it can only come from bot
    code: signals are delivered to the main thread)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError(f"{self._name}: cannot run calls after shutdown")
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._calls.put((future, lambda: fn(*args, **kwargs)))
        return future

    def _work(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except Exception as exc:
                future.set_exception(exc)
            except BaseException as exc:
                future.set_exception(BotCodeError(describe(exc), exc))
            else:
                future.set_result(result)
            del item, future, call

    def busy(self) -> bool:
        """Whether the thread is still alive (a call in progress or queued)."""
        return self._thread is not None and self._thread.is_alive()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; the thread ends after the calls already queued (a stuck one included)."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            thread = self._thread
        if cancel_futures:
            while True:
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        self._calls.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()


def run_in_daemon_thread(func: Callable[..., T], *args: Any, name: str = "leo-daemon") -> Future[T]:
    """Run `func` on a new daemon thread (for work that may never return, like importing bot
    code during a reload); its future fails with a `BotCodeError` on any non-`Exception`."""
    executor = BotThread(name)
    future = executor.submit(func, *args)
    executor.shutdown(wait=False)
    return future
