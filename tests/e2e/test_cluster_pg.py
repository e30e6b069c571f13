"""Three `leo run` hosts on one fresh PostgreSQL store, with a partner using them all while two
of them are killed with -9 and come back.

Objects go in continuously through the admin API of whichever host is up; a partner consumes a
4-partition stream, each read through another host, and receives webhook notifications whose
batches it downloads; it calls Get Object as fast as it can, spread over the hosts. One host is
killed with -9 and restarted, then another. Afterwards: every object version reached the stream,
once and in order per key; the batches (one line per key: its latest change) carried each key's
versions in order up to its last; no queue event was duplicated; no bot ran on
two hosts at once (recorded from inside the bots); Get Object's rate limit held throughout,
summed over the hosts.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from ..conftest import LeoRun, Project, leo, wait_until
from ..receiver import receiver
from .test_hosts import RECORDER, _can_rename_host, _host_name, assert_no_run_on_two_processes_at_once, runs_by_bot

ADMIN = "cluster-admin-token"
TTL = 3
RECORDERS = 3
KEYS = 12
PARTITIONS = 4
RATE = 10


PROJECT = f"""\
version: 1
server: {{port: 0, get_object_rate: {RATE}, allow_private_callbacks: true}}
cluster: {{lease_ttl: {TTL}}}
object_types: {{inventory: {{key: sku}}}}
pipelines:
  record:
    bots:
""" + "".join(f"      - {{id: r{n}, use: ./recorder.py:Recorder, in: inventory.changes, out: rec.r{n}, batch: {{records: 20}}}}\n"
              for n in range(RECORDERS))


class Cluster:
    """The hosts that are up (their base URLs), as the partner's load balancer would know them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[int, LeoRun] = {}
        self.started: set[int] = set()  # every process that was a host, killed ones included

    def urls(self) -> list[str]:
        with self.lock:
            return [run.http for run in self.runs.values()]

    def pick(self, n: int) -> str:
        urls = self.urls()
        return urls[n % len(urls)]


class Partner(threading.Thread):
    """A loop run until stopped; connection errors (a host killed under it) move on to another host."""

    def __init__(self, cluster: Cluster, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.headers = cluster, headers
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self.turn = itertools.count()

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=10) as client:
            while not self.stopping.is_set():
                try:
                    self.step(client, self.cluster.pick(next(self.turn)))
                except httpx.TransportError:
                    pass  # that host was killed: the next turn goes to another
                except Exception as error:  # reported by the test (stop)
                    self.errors.append(repr(error))
                    return

    def step(self, client: httpx.Client, url: str) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.errors, self.errors


class Ingester(Partner):
    """Puts a few objects at a time, each with a quantity never sent before, through any host.
    `sent[key]` is the quantities in the order they went in: version n has the n-th."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, {"Authorization": f"Bearer {ADMIN}"})
        self.sent: dict[str, list[int]] = defaultdict(list)
        self.counter = itertools.count(1)
        self.round = itertools.count()
        self.pending: list[dict[str, Any]] = []

    def step(self, client: httpx.Client, url: str) -> None:
        if not self.pending:  # what failed on a killed host goes again as it was: unchanged if it went in
            first = next(self.round) * 5  # three keys at a time, every key in turn
            self.pending = [{"sku": f"SKU-{(first + k) % KEYS}", "quantity": next(self.counter)} for k in range(3)]
        answer = client.post(f"{url}/v1/admin/objects/inventory", json=self.pending)
        assert answer.status_code == 200, answer.text
        for item in self.pending:
            sent = self.sent[item["sku"]]
            if not sent or sent[-1] != item["quantity"]:
                sent.append(item["quantity"])
        self.pending = []
        self.stopping.wait(0.03)


class StreamReader(Partner):
    """Reads partition p through host (p + turn): every partition through every host in turn,
    committing each page; keeps each partition's records in order."""

    def __init__(self, cluster: Cluster, headers: dict[str, str], stream: str) -> None:
        super().__init__(cluster, headers)
        self.stream = stream
        self.after: dict[int, str | None] = dict.fromkeys(range(PARTITIONS))
        self.records: dict[int, list[dict[str, Any]]] = defaultdict(list)

    def step(self, client: httpx.Client, url: str) -> None:
        for partition in range(PARTITIONS):
            base = f"{self.cluster.pick(next(self.turn) + partition)}/v1/streams/{self.stream}/partitions/{partition}"
            after = self.after[partition]
            page = client.get(f"{base}/records", params={"limit": 200, **({"after": after} if after else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            self.records[partition].extend(body["records"])
            self.after[partition] = body["next_position"]
            if body["records"]:
                client.put(f"{base}/checkpoint", json={"position": body["next_position"],
                                                       "generation": body["generation"]})
        self.stopping.wait(0.05)

    def versions(self) -> dict[str, list[tuple[int, int]]]:
        seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for records in self.records.values():
            for record in records:
                seen[record["key"]].append((record["version"], record["data"]["quantity"]))
        return seen


class GetObject(Partner):
    """Get Object as fast as it goes, by turns on every host: (sent, answered, let through) per call."""

    def __init__(self, cluster: Cluster, headers: dict[str, str]) -> None:
        super().__init__(cluster, headers)
        self.calls: list[tuple[float, float, bool]] = []

    def step(self, client: httpx.Client, url: str) -> None:
        sent = time.monotonic()
        answer = client.get(f"{url}/v1/objects/inventory/SKU-1")
        assert answer.status_code in (200, 404, 429), answer.text
        self.calls.append((sent, time.monotonic(), answer.status_code != 429))


def evenly_over(project: Project, pids: set[int]) -> bool:
    """Whether, by `leo hosts`, exactly the hosts `pids` hold bots, evenly (ceil / floor)."""
    listed = leo("hosts", "-f", str(project.file), "--json")
    assert listed.returncode == 0, listed.stderr
    held = {host["pid"]: len(host["bots"]) for host in json.loads(listed.stdout) if host["bots"]}
    return set(held) == pids and max(held.values()) - min(held.values()) <= 1


def ran_since(project: Project, moment: float, pids: set[int]) -> bool:
    """Whether every recorder has run, since `moment`, in one of `pids`."""
    runs = runs_by_bot(project)
    return all(any(pid in pids and start >= moment for pid, start, _ in runs.get(f"r{n}", []))
               for n in range(RECORDERS))


@pytest.mark.parametrize("project", ["postgresql"], indirect=True)
def test_three_hosts_on_postgresql_two_killed_and_back_lose_and_duplicate_nothing(project: Project, leo_run) -> None:
    project.write(RECORDER, "recorder.py")
    project.write(PROJECT)
    cluster = Cluster()
    env = {"LEO_ADMIN_TOKEN": ADMIN}

    named = _can_rename_host()  # as root: each host a host name of its own, so that the others cannot
    # see a killed host's pid is gone and its bots move only when their leases expire, as between machines

    def start(slot: int) -> None:
        run = leo_run(project, env=env, preexec_fn=_host_name(f"host-{slot}") if named else None)
        run.wait_ready()
        with cluster.lock:
            cluster.runs[slot] = run
            cluster.started.add(run.proc.pid)

    for slot in range(3):
        start(slot)
    made = leo("partners", "create", "acme", "-f", str(project.file), "--json")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}

    with receiver() as hook:
        stream = httpx.post(f"{cluster.pick(0)}/v1/streams", headers=headers,
                            json={"object_type": "inventory", "partitions": PARTITIONS, "start_at": "earliest"})
        assert stream.status_code == 201, stream.text
        webhook = httpx.post(f"{cluster.pick(1)}/v1/webhooks", headers=headers,
                             json={"object_type": "inventory", "callback_url": hook.url + "/h", "interval": 1})
        assert webhook.status_code == 201, webhook.text
        ingester = Ingester(cluster)
        reader = StreamReader(cluster, headers, stream.json()["id"])
        getters = [GetObject(cluster, headers) for _ in range(3)]  # together past the rate, however slow a call
        for thread in (ingester, reader, *getters):
            thread.start()
        wait_until(lambda: len(reader.versions()) == KEYS and len(hook.delivered("/h")) >= 2,
                   timeout=30, what="the stream and the webhook under way")

        for victim in (1, 2):  # kill -9 one host, bring it back, then another
            with cluster.lock:
                dead = cluster.runs.pop(victim)
            killed_at = time.time()
            dead.kill()
            others = {run.proc.pid for run in cluster.runs.values()}
            wait_until(lambda others=others, at=killed_at: ran_since(project, at, others), timeout=TTL + 10,
                       what="every recorder running on the hosts left")
            notified = len(hook.delivered("/h"))
            wait_until(lambda n=notified: len(hook.delivered("/h")) > n, timeout=TTL + 10,
                       what="webhook notifications going on")
            start(victim)
            wait_until(lambda: evenly_over(project, {run.proc.pid for run in cluster.runs.values()}), timeout=30,
                       what="the bots spread again over the three hosts (7 bots: 3 + 2 + 2)")
        ingester.stop()
        for getter in getters:
            getter.stop()
        final = {key: len(quantities) for key, quantities in ingester.sent.items()}
        wait_until(lambda: all(max((v for v, _ in reader.versions().get(key, [])), default=0) == version
                               for key, version in final.items()), timeout=30, what="the stream caught up")
        reader.stop()

        # Every version on the stream, once, in order per key, each with the quantity that made it.
        for key, seen in reader.versions().items():
            assert seen == list(enumerate(ingester.sent[key], 1)), f"{key}: stream had {seen}"

        # Every batch notified and downloaded (through any host); per key, versions only go up.
        batches_seen: dict[str, list[int]] = defaultdict(list)

        def batches_caught_up() -> bool:
            batches_seen.clear()
            downloaded: set[str] = set()
            for received in hook.delivered("/h"):
                batch_id = received.json["data"]["batch_id"]
                if batch_id in downloaded:
                    continue  # notified again (its host killed before the answer was recorded)
                downloaded.add(batch_id)
                path = "/v1/batches/" + received.json["data"]["url"].split("/v1/batches/", 1)[1]
                body = httpx.get(cluster.pick(len(downloaded)) + path, headers=headers)
                assert body.status_code == 200, body.text
                for line in body.text.splitlines():
                    record = json.loads(line)
                    batches_seen[record["key"]].append(record["version"])
            return all(batches_seen.get(key, [0])[-1] == version for key, version in final.items())

        wait_until(batches_caught_up, timeout=30, what="the batches caught up")
        for key, versions in batches_seen.items():  # a batch has one line per key, its latest change
            assert versions == sorted(set(versions)) and versions[-1] == final[key], f"{key}: batches had {versions}"
        listed = httpx.get(f"{cluster.pick(0)}/v1/webhooks/{webhook.json()['id']}/batches", headers=headers,
                           params={"limit": 1000})
        assert listed.status_code == 200, listed.text

    # No queue event twice: the changes, and what each recorder passed on.
    store = project.store()
    changes = [(e.payload["key"], e.payload["version"]) for e in store.read("inventory.changes", 0, 10_000_000)]
    assert not [c for c, n in Counter(changes).items() if n > 1], "inventory.changes: duplicated"
    assert sorted(changes) == sorted((key, v) for key, last in final.items() for v in range(1, last + 1))
    wait_until(lambda: all(store.count_after(f"rec.r{n}", 0) >= len(changes) for n in range(RECORDERS)),
               timeout=30, what="every recorder caught up")
    for n in range(RECORDERS):
        passed = Counter((e.payload["key"], e.payload["version"]) for e in store.read(f"rec.r{n}", 0, 10_000_000))
        assert passed == Counter(changes), f"rec.r{n}: lost or duplicated events"
    store.close()

    # No bot ran on two hosts at once, from the bots' own notes. That every host held bots was
    # shown by `evenly_over` after each restart; a restarted host's two may hold no recorder
    # (7 bots, 3 of them recorders), so the recorders' notes need not name all five processes.
    pids = assert_no_run_on_two_processes_at_once(project)
    assert pids <= cluster.started and len(pids) >= 3, (pids, cluster.started)

    # Get Object, summed over the hosts: between any two calls let through, at most
    # burst (= rate) + rate * T + 1 passed, T from the first's sending to the last's answer.
    calls = sorted(call for getter in getters for call in getter.calls)
    passed = [(sent, answered) for sent, answered, through in calls if through]
    assert len(passed) > RATE and len(calls) > 2 * len(passed)  # it was held back
    for i, (sent, _) in enumerate(passed):
        for j in range(i + RATE, len(passed)):
            assert j - i + 1 <= RATE + RATE * (passed[j][1] - sent) + 1, \
                f"{j - i + 1} Get Object calls passed in {passed[j][1] - sent:.2f}s over the hosts"

    for run in cluster.runs.values():
        assert run.stop() == 0
    print(f"{sum(final.values())} versions of {KEYS} keys; {sum(map(len, reader.records.values()))} stream records; "
          f"{len(hook.delivered('/h'))} notifications; Get Object {len(passed)} of {len(calls)} let through; "
          f"hosts named: {named}")
