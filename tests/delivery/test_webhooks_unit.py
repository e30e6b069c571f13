"""Webhook pieces without I/O: intervals, secrets, signatures, notification bodies, retry decisions."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import standardwebhooks

from leo_runtime.delivery.webhooks import (
    Outgoing,
    check_expire_old_after,
    judge,
    new_secret,
    notification_body,
    parse_interval,
    parse_retry_after,
    secret_key,
    signed_headers,
    snapshot_line,
)
from leo_runtime.errors import InputError
from leo_runtime.store.base import ObjectRecord
from leo_runtime.store.base_webhooks import DueDelivery


@pytest.mark.parametrize(("value", "ms"), [(1, 1000), (300, 300_000), (1.5, 1500), ("PT5M", 300_000), ("5m", 300_000),
                                           ("P7D", 7 * 86_400_000), ("PT1S", 1000)])
def test_intervals_are_seconds_or_durations(value: object, ms: int) -> None:
    assert parse_interval(value) == ms


@pytest.mark.parametrize("value", [0, -1, 0.5, "PT0S", "-PT5M", 10**12, "P8D", float("inf"), float("nan"), True, None,
                                   [5], {"s": 5}, "soon", "", "5 minutes"])
def test_intervals_out_of_bounds_or_malformed_are_refused(value: object) -> None:
    with pytest.raises(InputError, match=r"^interval: "):
        parse_interval(value)


def test_a_signature_the_standard_webhooks_verifier_accepts() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = notification_body("wh_1", "bat_1", "https://leo.example/v1/batches/bat_1", 3, False, 1_767_225_600_000)
    headers = signed_headers(secret_key(secret), "bat_1", body)
    assert headers["webhook-id"] == "bat_1"
    assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(body, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body.replace(b'"records":3', b'"records":4'), headers)


def test_during_a_rotation_both_secrets_sign_new_first_until_the_old_one_expires() -> None:
    old, new = new_secret(), new_secret()
    body = notification_body("wh_1", "bat_1", "https://leo.example/v1/batches/bat_1", 3, False, 1_767_225_600_000)
    due = DueDelivery(7, "bat_1", "", 3, "wh_1", 3, False, 0, 0, 0, "https://p.example/h", new, old, 5_000)
    outgoing = Outgoing(due, "https://p.example/h", secret_key(new), body, secret_key(old))
    headers = signed_headers(outgoing.keys(4_999), "bat_1", body)
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and signatures[0] == signed_headers(secret_key(new), "bat_1", body,
                                                                    int(headers["webhook-timestamp"]))["webhook-signature"]
    for secret in (old, new):  # the reference verifier accepts either secret
        assert standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    after = signed_headers(outgoing.keys(5_000), "bat_1", body)  # expired: the old one signs no more
    assert " " not in after["webhook-signature"]
    assert standardwebhooks.Webhook(new).verify(body, after) == json.loads(body)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(old).verify(body, after)


@pytest.mark.parametrize("value", [-1, 604_801, 1.5, "3600", True, None])
def test_expire_old_after_is_whole_seconds_up_to_a_week(value: object) -> None:
    assert check_expire_old_after(0) == 0 and check_expire_old_after(604_800) == 604_800
    with pytest.raises(InputError, match=r"^expire_old_after: give whole seconds from 0"):
        check_expire_old_after(value)


def test_the_notification_is_thin_and_the_same_on_every_retry() -> None:
    body = notification_body("bot:erp", "bat_1", "https://leo.example/v1/batches/bat_1", 3, True, 1_767_225_600_000)
    assert json.loads(body) == {"type": "batch.ready", "timestamp": "2026-01-01T00:00:00.000Z",
                                "data": {"webhook_id": "erp", "batch_id": "bat_1", "url": "https://leo.example/v1/batches/bat_1",
                                         "records": 3, "true_up": True}}
    assert body == notification_body("bot:erp", "bat_1", "https://leo.example/v1/batches/bat_1", 3, True, 1_767_225_600_000)


def test_any_text_is_a_secret_for_a_webhook_sender_bot() -> None:
    assert secret_key("not-base64 text") == b"not-base64 text"
    assert secret_key("whsec_" + base64.b64encode(b"k" * 24).decode()) == b"k" * 24


DUE = DueDelivery(7, "bat_7", "", 3, "wh_3", 2, False, 0, 0, 0, "https://p.example/h")
SCHEDULE = (5.0, 300.0)


def test_2xx_delivers_410_disables_and_anything_else_is_retried_on_the_schedule() -> None:
    assert judge(DUE, SCHEDULE, 1000, status=204, error=None).delivered
    gone = judge(DUE, SCHEDULE, 1000, status=410, error="HTTP 410")
    assert gone.gone and not gone.delivered
    for status, error in ((500, "HTTP 500"), (302, "HTTP 302"), (None, "cannot connect"), (429, "HTTP 429")):
        outcome = judge(DUE, SCHEDULE, 1000, status=status, error=error)
        assert (outcome.delivered, outcome.next_attempt_at, outcome.error) == (False, 6000, error)


def test_the_schedule_runs_out_and_retry_after_is_honoured() -> None:
    from dataclasses import replace

    last = replace(DUE, round=2)
    assert judge(last, SCHEDULE, 1000, status=500, error="x").next_attempt_at is None  # 1 attempt + 2 retries
    assert judge(replace(DUE, round=1), SCHEDULE, 1000, status=500, error="x").next_attempt_at == 301_000
    assert judge(DUE, SCHEDULE, 1000, status=429, error="x", retry_after=42).next_attempt_at == 43_000


def test_retry_after_takes_seconds_or_a_date_and_is_bounded() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("999999999999") == 86_400
    soon = datetime.now(UTC) + timedelta(seconds=60)
    assert 50 < (parse_retry_after(format_datetime(soon, usegmt=True)) or 0) <= 60
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0
    for junk in (None, "", "soon", "-5", "1.5", "Tue, 99 Foo"):
        assert parse_retry_after(junk) is None


def test_a_snapshot_line_is_the_change_record_with_op_snapshot() -> None:
    record = ObjectRecord("inventory", 'SKU "1"', 4, 1_767_225_600_000, False, 42, '{"sku": "SKU \\"1\\"", "q": 1}')
    assert json.loads(snapshot_line(record)) == {
        "object_type": "inventory", "key": 'SKU "1"', "op": "snapshot", "version": 4,
        "changed_at": "2026-01-01T00:00:00.000Z", "changed_fields": [], "data": {"sku": 'SKU "1"', "q": 1}}
