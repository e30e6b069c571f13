"""`DeliveryService` against a real receiver on loopback: what one attempt sends and how each
answer is judged (the runtime tests drive it through the sender bot)."""

from __future__ import annotations

import time

import standardwebhooks

from leo_runtime.delivery.webhooks import DeliveryService, Outgoing, notification_body, secret_key
from leo_runtime.store.base_webhooks import DeliveryOutcome, DueDelivery

from ..conftest import wait_until
from ..receiver import receiver

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


def attempt_each(url: str, paths: list[str]) -> dict[str, DeliveryOutcome]:
    service = DeliveryService(timeout=5, max_in_flight=8, allow_private=True, schedule=[5])
    service.start()
    try:
        service.heartbeat()
        items = []
        for index, path in enumerate(paths):
            due = DueDelivery(index + 1, f"bat_{index}", "", index + 1, f"wh_{index}", 3, False, 0, 0, 0, url + path)
            body = notification_body(due.webhook_id, due.batch_id, "http://x/v1/batches/b", 3, False, 0)
            items.append(Outgoing(due, url + path, secret_key(SECRET), body))
        service.submit(items)
        outcomes: list[DeliveryOutcome] = []
        wait_until(lambda: outcomes.extend(service.take_outcomes()) or len(outcomes) == len(paths), what="every outcome")
        return {paths[outcome.batch - 1]: outcome for outcome in outcomes}
    finally:
        service.close()


def test_each_answer_is_judged_with_its_status_a_bit_of_its_body_and_retry_after() -> None:
    with receiver() as hook:
        answers = {"/ok": (204, {}), "/boom": (500, {}, b"went   wrong\n" + b"x" * 1000),
                   "/moved": (302, {"location": "/elsewhere"}), "/busy": (429, {"retry-after": "60"}, b"slow down")}
        hook.answer = lambda received: answers[received.path]
        before = int(time.time() * 1000)
        outcomes = attempt_each(hook.url, list(answers))
        assert outcomes["/ok"].delivered and outcomes["/ok"].status == 204
        boom = outcomes["/boom"]
        assert boom.error == "HTTP 500: went wrong " + "x" * (300 - len("went   wrong\n"))  # 300 bytes, blanks folded
        assert not boom.delivered and boom.next_attempt_at is not None and boom.next_attempt_at - boom.attempted_at == 5000
        assert outcomes["/moved"].error == "HTTP 302 (redirects are not followed: give the final URL as the callback)"
        assert hook.received("/elsewhere") == []
        busy = outcomes["/busy"]
        assert busy.error == "HTTP 429: slow down" and busy.next_attempt_at - busy.attempted_at == 60_000
        assert busy.attempted_at >= before


def test_an_attempt_is_signed_and_names_its_batch() -> None:
    with receiver() as hook:
        attempt_each(hook.url, ["/hook"])
        [received] = hook.received("/hook")
        headers = received.headers
        assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("leo-runtime/")
        assert headers["webhook-id"] == "bat_0"
        assert standardwebhooks.Webhook(SECRET).verify(received.body, headers)["data"]["batch_id"] == "bat_0"


def test_a_refused_connection_is_a_retry_saying_it_cannot_connect() -> None:
    with receiver() as hook:
        url = hook.url
    outcome = attempt_each(url, ["/gone"])["/gone"]
    assert not outcome.delivered and outcome.status is None and outcome.next_attempt_at is not None
    assert outcome.error is not None and outcome.error.startswith("cannot connect")
