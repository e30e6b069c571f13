"""Helpers for webhook tests: commit store ops as a bot would, seal a partner webhook's window."""

from __future__ import annotations

from leo_runtime.store import RunCommit, Store
from leo_runtime.store.base_webhooks import RouteChanges, SealedBatch, SealWebhooks, StoreOp
from leo_runtime.timeutil import now_ms


def commit(store: Store, *ops: StoreOp, bot: str = "test-bot") -> None:
    """Commit store ops as a bot's run would (taking the bot's lease first)."""
    assert store.acquire_lease(bot, "test-owner", 60_000)
    store.commit_run(RunCommit(bot_id=bot, owner="test-owner", ops=list(ops)))


def seal_now(store: Store, webhook_id: str, retention_ms: int = 86_400_000) -> SealedBatch | None:
    """Route every change of the webhook's type made since it was created and seal them now."""
    webhook = store.webhook(webhook_id)
    assert webhook is not None
    events = store.read(webhook.source_queue, webhook.window_from, 1_000_000)
    if events:
        commit(store, RouteChanges([(webhook.rid, e.seq, e.payload["key"]) for e in events]), bot=webhook.router)
        store.set_checkpoint(webhook.router, webhook.source_queue, events[-1].seq)
    store.update_webhook(webhook_id, {"interval_ms": webhook.interval_ms}, now_ms() - webhook.interval_ms)  # due now
    seal = SealWebhooks(now_ms(), retention_ms, webhooks=[webhook.rid])
    commit(store, seal, bot="webhooks:batcher")
    return seal.sealed[0] if seal.sealed else None
