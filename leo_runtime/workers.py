"""`leo run --workers N`: bot worker processes beside the API process, on the same store.

The process `leo run` started serves the HTTP API (role ``api``); it starts N children that run
``leo run --role bots --no-http`` on the same pipelines file and store. The bots spread over
the children by the leases every host of a cluster shares (`leo_runtime.leases`), so one
machine's cores all work. A child that dies is started again (its bots meanwhile move to the
others); a child outlives no parent (Linux: it is sent SIGTERM when the parent dies). Stopping
the parent stops the children, each draining its runs first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("leo.workers")

WORKER_OF = "LEO_WORKER_OF"
"""The environment variable that tells a worker its parent's pid."""

RESTART_DELAY_SECONDS = 1.0
FAILED_START_SECONDS = 10.0
"""A worker that exits sooner than this after its start failed to start."""
GIVE_UP_AFTER = 3
"""Failed starts in a row after which `leo run` stops (a worker that cannot start never will)."""
_LEO = "import sys; from leo_runtime.cli import main; sys.argv[0] = 'leo'; main()"


def worker_command(args: Sequence[str]) -> list[str]:
    """The command line of one worker: ``leo`` with `args`, by this interpreter."""
    return [sys.executable, "-c", _LEO, *args]


class WorkerPool:
    """N worker processes, each started again when it dies, until `stop`."""

    def __init__(self, args: Sequence[str], count: int, *, on_give_up: Callable[[], None] = lambda: None) -> None:
        self.command = worker_command(args)
        self.count = count
        self.gave_up = False
        self._on_give_up = on_give_up
        self.processes: list[asyncio.subprocess.Process | None] = [None] * count
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep(index), name=f"leo-worker-{index}") for index in range(self.count)]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process is not None]

    async def _keep(self, index: int) -> None:
        failed_starts = 0
        while not self._stopping:
            started = time.monotonic()
            process = self.processes[index] = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.DEVNULL, env={**os.environ, WORKER_OF: str(os.getpid())},
                start_new_session=True)  # a terminal's Ctrl-C reaches the parent, which stops them
            log.info("bot worker %d started (pid %d)", index + 1, process.pid)
            code = await process.wait()
            if self._stopping:
                return
            failed_starts = failed_starts + 1 if time.monotonic() - started < FAILED_START_SECONDS else 0
            if failed_starts >= GIVE_UP_AFTER:
                log.error("bot worker %d exited with %s within %gs of its start %d times in a row (its log says "
                          "why); stopping", index + 1, code, FAILED_START_SECONDS, failed_starts)
                self.gave_up = True
                self._on_give_up()
                return
            log.error("bot worker %d (pid %d) exited with %s; starting it again in %gs (its bots run on the others "
                      "meanwhile)", index + 1, process.pid, code, RESTART_DELAY_SECONDS)
            await asyncio.sleep(RESTART_DELAY_SECONDS)

    async def stop(self, timeout: float) -> bool:
        """SIGTERM every worker (each drains its runs) and wait up to `timeout` (+ 5 s); kill the
        ones still running then. Returns whether every worker exited 0."""
        self._stopping = True
        running = [process for process in self.processes if process is not None and process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in running:
            try:
                codes.append(await asyncio.wait_for(process.wait(), timeout + 5))
            except TimeoutError:
                log.error("bot worker pid %d did not stop within %gs; killing it", process.pid, timeout + 5)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                codes.append(await process.wait())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return not self.gave_up and all(code == 0 for code in codes)


def die_with_parent() -> None:
    """In a worker (``LEO_WORKER_OF`` names its parent's pid): be sent SIGTERM when the parent
    dies (Linux), and stop at once if it died already. Called early by `leo run`; nothing
    elsewhere. (Set here, not between fork and exec: a child of a threaded process must not
    load libraries before it execs.)"""
    parent = os.environ.pop(WORKER_OF, None)
    if parent is None or not parent.isdigit():
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        raise SystemExit("leo run: the process that started this bot worker is gone")
