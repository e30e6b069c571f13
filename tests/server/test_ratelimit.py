"""The Get Object rate limit is exact: never more than burst + rate * T calls in T seconds, never a
429 for a partner that keeps to the rate. Time comes from a hand-driven clock, never the wall."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction

import pytest

from leo_runtime.server.ratelimit import NS, TokenBuckets

from ..conftest import wait_until
from .conftest import Api, FakeClock, put_object

OBJECT = "/v1/objects/inventory/SKU-1"


def _most_in_any_window(times: list[int], rate: Fraction, burst: Fraction) -> Fraction:
    """max over windows [t_i, t_j] of accepted calls - (burst + rate * span): must stay <= 0.

    (j - i + 1) - burst - rate * (t_j - t_i) splits into a part of j and a part of i, so a running
    maximum over i makes it one pass, in exact fractions.
    """
    worst = best_start = Fraction(-10**18)
    for j, time_j in enumerate(times):
        best_start = max(best_start, rate * Fraction(time_j, NS) - j)
        worst = max(worst, j + 1 - burst - rate * Fraction(time_j, NS) + best_start)
    return worst


@pytest.mark.parametrize("rate", [10, 3, 2.5, 0.5, 1000])
def test_no_window_ever_gets_more_than_burst_plus_rate_times_its_length(rate: float) -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate, clock=clock)
    generator = random.Random(rate)
    accepted = []
    for _ in range(3000):
        clock.now += generator.choice([0, 0, 1, 1000, round(NS / rate / 3), round(NS / rate), 5 * NS])
        if buckets.take("p").allowed:
            accepted.append(clock.now)
    assert len(accepted) > 100
    assert _most_in_any_window(accepted, buckets.rate, buckets.burst) <= 0


@pytest.mark.parametrize("rate", [10, 3, 2.5, 0.5, 1000])
def test_a_caller_that_keeps_to_the_rate_is_never_refused(rate: float) -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate, clock=clock)
    interval = -(-NS * Fraction(rate).denominator // Fraction(rate).numerator)  # 1/rate s, rounded up
    generator = random.Random(7)
    for _ in range(int(buckets.burst)):  # a full burst first
        assert buckets.take("p").allowed
    for _ in range(5000):
        clock.now += interval + generator.choice([0, 0, 0, 1, interval // 2])
        assert buckets.take("p").allowed


def test_a_refusal_says_when_to_retry_and_the_headers_count_down() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(10, clock=clock)
    remaining = [buckets.take("p").headers["RateLimit-Remaining"] for _ in range(10)]
    assert remaining == [str(n) for n in range(9, -1, -1)]
    refused = buckets.take("p")
    assert not refused.allowed
    assert refused.headers == {"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "1",
                               "RateLimit-Policy": "10;w=1", "Retry-After": "1"}
    assert refused.retry_after_ns == NS // 10
    clock.advance(0.1)
    assert buckets.take("p").allowed
    assert buckets.take("other").headers["RateLimit-Remaining"] == "9"  # one bucket per caller


def test_slow_and_fractional_rates() -> None:
    clock = FakeClock()
    slow = TokenBuckets(0.5, clock=clock)  # a bucket never holds less than one call
    assert slow.take("p").allowed and not slow.take("p").allowed
    assert slow.take("p").headers["Retry-After"] == "2"
    clock.advance(2)
    assert slow.take("p").allowed
    odd = TokenBuckets(2.5, clock=clock)
    assert [odd.take("p").allowed for _ in range(3)] == [True, True, False]
    assert odd.take("p").headers["RateLimit-Limit"] == "2"
    assert "RateLimit-Policy" not in odd.take("p").headers


@pytest.fixture
def quick_thread_switches() -> Iterator[None]:
    """Clients and server share this process: hand the GIL over more often than every 5 ms, so
    the thread that drives the clock is not starved by the hammering ones."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("quick_thread_switches")
def test_over_the_http_api_hammering_from_several_connections_gets_exactly_burst_plus_rate_times_t(api: Api) -> None:
    """Three connections hammer for 10 (fake) seconds while another partner calls at exactly the
    rate after a full burst: the hammering partner gets 10 + 10 * 10 calls, the other no 429."""
    put_object(api.store, "inventory", "SKU-1", {"sku": "SKU-1"})
    clock = FakeClock()
    api.use_clock(clock)
    hammer, steady = api.partner("hammer"), api.partner("steady")
    step_seconds, steps = 0.1, 100  # 10 s of fake time
    step = [0]
    answered_in_step: Counter[int] = Counter()
    refused_in_step: Counter[int] = Counter()
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def hammering() -> None:
        with api.client(hammer) as client:
            while not stop.is_set():
                sent_in = step[0]
                answer = client.get(OBJECT)
                with lock:
                    statuses[answer.status_code] += 1
                    answered_in_step[sent_in] += 1
                    refused_in_step[sent_in] += answer.status_code == 429
                    if not {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(answer.headers):
                        problems.append(f"no rate headers on {answer.status_code}")
                    if answer.status_code == 429 and int(answer.headers["retry-after"]) < 1:
                        problems.append("429 without Retry-After")

    threads = [threading.Thread(target=hammering) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        with api.client(steady) as client:
            steady_statuses = [client.get(OBJECT).status_code for _ in range(10)]  # a full burst at t=0
            for number in range(1, steps + 1):
                clock.advance(step_seconds)
                with lock:
                    step[0] = number
                # Every step is hammered (a bucket holds 1 s of calls, so nothing is lost between
                # answers), and after the last one the bucket is drained: a 429 sent after it.
                wait_until(lambda n=number: answered_in_step[n] >= 1, interval=0.001, what=f"hammering in step {number}")
                steady_statuses.append(client.get(OBJECT).status_code)  # exactly 10 calls per second
            wait_until(lambda: refused_in_step[steps] >= 1, interval=0.001, what="the bucket to be drained")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert problems == []
    assert statuses[200] == 10 + 10 * 10  # burst + rate * T: not one more, and none lost
    assert statuses[429] >= 100
    assert set(statuses) == {200, 429}
    assert steady_statuses == [200] * (10 + steps)


@pytest.mark.parametrize("rate", [10, 2.5])
def test_shared_buckets_hold_the_rate_summed_over_hosts(tmp_path, rate: float) -> None:
    """Three hosts (three stores on one file) take from one partner's bucket in turn: summed over
    them, no window gets more than burst + rate * its length, and a caller at the rate passes."""
    from leo_runtime.server.ratelimit import SharedTokenBuckets
    from leo_runtime.store import SQLiteStore

    clock = FakeClock()
    stores = [SQLiteStore(tmp_path / "leo.db") for _ in range(3)]
    hosts = [SharedTokenBuckets(store, rate, prefix="get_object:", clock=clock) for store in stores]
    generator = random.Random(3)
    accepted = []
    for call in range(600):
        clock.now += generator.choice([0, 0, 1000, round(NS / rate / 3), round(NS / rate), 2 * NS])
        if hosts[call % 3].take("p").allowed:
            accepted.append(clock.now)
    assert len(accepted) > 50
    assert _most_in_any_window(accepted, hosts[0].rate, hosts[0].burst) <= 0
    clock.now += 10 * NS  # full again: one burst, summed over the hosts

    assert sum(host.take("p").allowed for host in hosts * 10) == int(hosts[0].burst)
    for store in stores:
        store.close()


def test_shared_buckets_on_postgresql_are_exact_under_concurrent_hosts_and_never_wait_for_a_writer() -> None:
    """On PostgreSQL a bucket's step takes turns only with steps of the same bucket: three hosts
    hammering one bucket from threads get exactly a burst, and a step goes through while another
    host holds the writers' lock (a bot's long commit, say)."""
    import threading

    from leo_runtime.server.ratelimit import SharedTokenBuckets
    from leo_runtime.store import open_store

    from ..pg import fresh_store_url

    url = fresh_store_url()
    stores = [open_store(url) for _ in range(3)]
    try:
        clock = FakeClock()
        hosts = [SharedTokenBuckets(store, 10, prefix="get_object:", clock=clock) for store in stores]
        allowed: list[bool] = []
        lock = threading.Lock()

        def hammer(host: SharedTokenBuckets) -> None:
            for _ in range(20):
                answer = host.take("p").allowed
                with lock:
                    allowed.append(answer)

        threads = [threading.Thread(target=hammer, args=(host,)) for host in hosts for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(allowed) == 120 and sum(allowed) == int(hosts[0].burst)  # no step lost another's take

        holding, release = threading.Event(), threading.Event()

        def writer() -> None:
            with stores[0]._write():
                holding.set()
                release.wait(30)

        held = threading.Thread(target=writer)
        held.start()
        try:
            assert holding.wait(10)
            clock.now += 10 * NS
            took = threading.Thread(target=lambda: hosts[1].take("q"))
            took.start()
            took.join(10)
            assert not took.is_alive(), "a bucket's step waited for another host's write"
        finally:
            release.set()
            held.join(30)
    finally:
        for store in stores:
            store.close()
