"""Several `leo run` processes on one store (SQLite, and PostgreSQL as separate hosts share it): each
bot runs in exactly one process at a time (recorded from inside the bots), bots spread evenly over
the processes that run bots and move when one is killed with -9 (within cluster.lease_ttl + 2 s) or
comes back, with no queue event lost or duplicated; a process of role api serves the API and runs no
bots, one of role bots serves /healthz and /metrics only; `leo hosts` lists them; `--workers` starts
bot workers beside an API process and stops them with it; a partner's long poll on a process that
runs no bots wakes on a commit made by another process (PostgreSQL: its NOTIFY)."""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ..conftest import STORES, Project, leo, wait_until

pytestmark = pytest.mark.parametrize("project", STORES, indirect=True)

BOTS = 6
ADMIN = "hosts-admin-token"
TTL = 3

RECORDER = '''
import os, time
from leo_runtime import Bot

class Recorder(Bot):
    """Passes each event on; notes each run (bot, pid, start, end) in runs.log beside the file."""

    def process(self, events, ctx):
        started = time.time()
        out = [event.payload for event in events]
        time.sleep(0.002)
        with open(os.path.join(os.path.dirname(__file__), "runs.log"), "a") as log:
            log.write(f"{ctx.bot_id} {os.getpid()} {started} {time.time()}\\n")
        return out
'''


def write_project(project: Project, workers: int = 0) -> None:
    project.write(RECORDER, "recorder.py")
    project.write(f"""\
version: 1
server: {{port: 0}}
cluster: {{lease_ttl: {TTL}, workers: {workers}}}
object_types: {{inventory: {{key: sku}}}}
pipelines:
  copy:
    bots:
""" + "\n".join(f"      - {{id: b{n}, use: ./recorder.py:Recorder, in: in, out: out.b{n}, batch: {{records: 50}}}}"
                for n in range(1, BOTS + 1)) + "\n")


def hosts(project: Project) -> list[dict[str, Any]]:
    result = leo("hosts", "-f", str(project.file), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def spread(project: Project) -> dict[str, list[str]]:
    """Bots per live host (by pid), from `leo hosts`."""
    return {str(host["pid"]): host["bots"] for host in hosts(project)}


def evenly_over(project: Project, pids: set[int]) -> bool:
    """Whether every bot is held, by exactly the processes `pids`, evenly (ceil / floor)."""
    now = spread(project)
    held = {pid: bots for pid, bots in now.items() if bots}
    counts = sorted(len(bots) for bots in held.values())
    return (set(held) == {str(pid) for pid in pids} and sum(counts) == BOTS
            and counts[-1] - counts[0] <= 1)


class Feeder:
    """Appends numbered events to `in` from a thread until stopped (as `leo queues put` would)."""

    def __init__(self, project: Project) -> None:
        self.store = project.store()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        while not self._stop.wait(0.02):
            self.store.append("in", [{"n": self.sent + i} for i in range(20)])
            self.sent += 20

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(10)
        self.store.close_thread()
        return self.sent


def runs_by_bot(project: Project) -> dict[str, list[tuple[int, float, float]]]:
    runs: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for line in (project.root / "runs.log").read_text().splitlines():
        bot, pid, start, end = line.split()
        runs[bot].append((int(pid), float(start), float(end)))
    return runs


def assert_no_run_on_two_processes_at_once(project: Project) -> set[int]:
    """From the bots' own notes: a bot's runs in different processes never overlap in time.
    Returns the pids that ran bots."""
    pids = set()
    for bot, runs in runs_by_bot(project).items():
        runs.sort(key=lambda run: run[1])
        for (pid_a, _, end_a), (pid_b, start_b, _) in itertools.pairwise(runs):
            assert pid_a == pid_b or end_a <= start_b, f"bot {bot} ran in {pid_a} and {pid_b} at once"
        pids |= {run[0] for run in runs}
    return pids


def assert_each_event_once_in_every_output(project: Project, sent: int) -> None:
    store = project.store()
    for n in range(1, BOTS + 1):
        numbers = Counter(event.payload["n"] for event in store.read(f"out.b{n}", 0, 10_000_000))
        assert not [k for k, c in numbers.items() if c > 1], f"out.b{n}: duplicated events"
        assert set(numbers) == set(range(sent)), f"out.b{n}: {sent - len(numbers)} event(s) missing"
    store.close()


def partner_headers(project: Project) -> dict[str, str]:
    made = leo("partners", "create", "acme", "-f", str(project.file), "--json")
    assert made.returncode == 0, made.stderr
    return {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}


def assert_get_object_rate_holds_over(urls: list[str], headers: dict[str, str], rate: int = 10) -> None:
    """A partner calling Get Object as fast as it can, by turns on every process that serves the
    API: summed over them, at most burst (= rate) + rate * T calls pass in T seconds."""
    clients = [httpx.Client(base_url=url, headers=headers) for url in urls]
    passed, started = 0, time.monotonic()
    for call in range(300):
        answer = clients[call % len(clients)].get("/v1/objects/inventory/SKU-1")
        assert answer.status_code in (404, 429), answer.text  # 404: let through (there is no such object)
        passed += answer.status_code == 404
    elapsed = time.monotonic() - started
    assert passed <= rate + rate * elapsed + 1, f"{passed} calls passed in {elapsed:.2f}s over {len(urls)} processes"
    assert passed >= rate  # the first burst passes
    for client in clients:
        client.close()


def assert_long_poll_wakes_on_a_commit_elsewhere(poll_on: str, ingest_on: str, headers: dict[str, str]) -> None:
    """A partner long-polls a stream on `poll_on` (a process that runs no bots); an object goes in
    through `ingest_on`'s admin API and another process's stream writer commits its record: the
    poll answers with that record, long before its wait is up."""
    with httpx.Client(base_url=poll_on, headers=headers, timeout=60) as partner:
        made = partner.post("/v1/streams", json={"object_type": "inventory", "start_at": "now"})
        assert made.status_code in (200, 201), made.text
        records = f"/v1/streams/{made.json()['id']}/partitions/0/records?wait=30&limit=10"
        answers: list[httpx.Response] = []
        poll = threading.Thread(target=lambda: answers.append(partner.get(records)), daemon=True)
        poll.start()
        ingest = httpx.post(f"{ingest_on}/v1/admin/objects/inventory", json=[{"sku": "SKU-9", "quantity": 9}],
                            headers={"Authorization": f"Bearer {ADMIN}"})
        assert ingest.status_code == 200, ingest.text
        poll.join(35)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert [record["key"] for record in answers[0].json()["records"]] == ["SKU-9"], answers[0].text


def test_bots_spread_over_processes_move_on_kill_9_and_come_back(project: Project, leo_run) -> None:
    write_project(project)
    admin = {"LEO_ADMIN_TOKEN": ADMIN}
    first = leo_run(project, env=admin)
    first.wait_ready()
    worker = leo_run(project, "--role", "bots")
    api = leo_run(project, "--role", "api", env=admin)
    worker.wait_ready()
    api.wait_ready()
    wait_until(lambda: evenly_over(project, {first.proc.pid, worker.proc.pid}), timeout=15,
               what="the bots spread over the two processes that run bots")
    listed = {host["pid"]: host for host in hosts(project)}
    assert {listed[pid]["role"] for pid in listed} == {"all", "bots", "api"}
    assert listed[api.proc.pid]["bots"] == [] and listed[api.proc.pid]["address"] == api.http
    assert listed[worker.proc.pid]["address"] is None

    # role api: the partner API and the console; role bots: /healthz and /metrics only.
    assert httpx.get(f"{api.http}/healthz").json()["bots"] == {}
    assert httpx.get(f"{api.http}/v1/objects/x/y").status_code == 401  # the API is there (needs a token)
    assert httpx.get(f"{worker.http}/healthz").status_code == 200
    assert httpx.get(f"{worker.http}/v1/objects/x/y").status_code == 404

    headers = partner_headers(project)
    assert_get_object_rate_holds_over([first.http, api.http], headers)

    feeder = Feeder(project)
    wait_until(lambda: feeder.sent > 200, what="events going in")
    worker.kill()  # SIGKILL: no drain, no release
    wait_until(lambda: evenly_over(project, {first.proc.pid}), timeout=TTL + 2,
               what=f"the killed process's bots running in the other within lease_ttl + 2 s ({TTL + 2}s)")
    back = leo_run(project, "--role", "bots")
    back.wait_ready()
    wait_until(lambda: evenly_over(project, {first.proc.pid, back.proc.pid}), timeout=15,
               what="the bots spread again over the process that came back")
    wait_until(lambda: any(run[0] == back.proc.pid for runs in runs_by_bot(project).values() for run in runs),
               what="runs in the process that came back")
    sent = feeder.stop()
    store = project.store()
    wait_until(lambda: all(store.queue_head(f"out.b{n}") and store.count_after(f"out.b{n}", 0) >= sent
                           for n in range(1, BOTS + 1)), timeout=60, what="every bot caught up")
    store.close()
    assert_each_event_once_in_every_output(project, sent)
    ran = assert_no_run_on_two_processes_at_once(project)
    assert api.proc.pid not in ran and {first.proc.pid, worker.proc.pid, back.proc.pid} <= ran
    assert_long_poll_wakes_on_a_commit_elsewhere(api.http, first.http, headers)
    for run in (first, back, api):
        assert run.stop() == 0


def test_workers_start_beside_the_api_process_and_stop_with_it(project: Project, leo_run) -> None:
    write_project(project, workers=2)
    run = leo_run(project)
    run.wait_ready()
    wait_until(lambda: len(hosts(project)) == 3, timeout=20, what="the API process and its two workers")
    listed = hosts(project)
    workers = {host["pid"] for host in listed if host["role"] == "bots"}
    assert [host["pid"] for host in listed if host["role"] == "api"] == [run.proc.pid] and len(workers) == 2
    wait_until(lambda: evenly_over(project, workers), timeout=15, what="the bots spread over the workers")
    status = leo("status", "-f", str(project.file), "--json")
    assert sorted(host["role"] for host in json.loads(status.stdout)["hosts"]) == ["api", "bots", "bots"]
    store = project.store()
    store.append("in", [{"n": n} for n in range(100)])
    wait_until(lambda: all(store.count_after(f"out.b{n}", 0) == 100 for n in range(1, BOTS + 1)),
               what="the workers ran every bot")
    store.close()
    assert run.stop() == 0  # SIGTERM: the workers drain and stop with it
    for pid in workers:
        wait_until(lambda pid=pid: not _alive(pid), timeout=10, what=f"worker {pid} gone")
    assert_each_event_once_in_every_output(project, 100)
    assert hosts(project) == []

    orphaned = leo_run(project)  # killed with -9, the API process takes its workers with it
    orphaned.wait_ready()
    wait_until(lambda: len(hosts(project)) == 3, timeout=20, what="the workers up again")
    workers = {host["pid"] for host in hosts(project) if host["role"] == "bots"}
    orphaned.kill()
    for pid in workers:
        wait_until(lambda pid=pid: not _alive(pid), timeout=15, what=f"worker {pid} gone with its parent")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _can_rename_host() -> bool:
    return subprocess.run(["unshare", "-u", "true"], capture_output=True).returncode == 0 if shutil.which("unshare") else False


@pytest.mark.skipif(not _can_rename_host(), reason="needs `unshare -u` (a UTS namespace: root) to give a process a host name")
def test_a_process_of_another_host_killed_has_its_bots_moved_by_lease_expiry(project: Project, leo_run) -> None:
    """As between two machines: the survivor cannot see the killed process's pid, so its bots
    move when their leases expire, within cluster.lease_ttl + 2 s."""
    write_project(project)
    survivor = leo_run(project, "--role", "bots", "--no-http")
    other = leo_run(project, "--role", "bots", "--no-http", preexec_fn=_host_name("elsewhere"))
    survivor.wait_ready()
    other.wait_ready()
    wait_until(lambda: evenly_over(project, {survivor.proc.pid, other.proc.pid}), timeout=15, what="the bots spread")
    assert {host["name"] for host in hosts(project)} == {socket.gethostname(), "elsewhere"}
    other.kill()
    wait_until(lambda: evenly_over(project, {survivor.proc.pid}), timeout=TTL + 2,
               what=f"the bots of the process on the other host running here within lease_ttl + 2 s ({TTL + 2}s)")
    assert survivor.stop() == 0


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls into it
_CLONE_NEWUTS = 0x04000000


def _host_name(name: str) -> Callable[[], None]:
    """Before exec: a UTS namespace of the child's own, named `name` (what `unshare -u` does)."""
    encoded = name.encode()

    def rename() -> None:
        if _LIBC.unshare(_CLONE_NEWUTS) != 0 or _LIBC.sethostname(encoded, len(encoded)) != 0:
            raise OSError(ctypes.get_errno(), "cannot give the child a host name of its own")

    return rename
