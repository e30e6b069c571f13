"""Who runs a bot: lease owners are ``host:pid:nonce`` so a restart on the same host can take
over at once from a process that is gone (killed with -9), instead of waiting for expiry."""

from __future__ import annotations

import os
import socket
import uuid

LEASE_TTL_MS = 30_000


def make_owner() -> str:
    """A lease owner id: ``host:pid:nonce`` (the pid lets a restart on this host reclaim at once)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` is a process of this host that no longer runs (killed, crashed)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
