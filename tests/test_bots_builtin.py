"""Built-in bots on their own: the filter and the event envelope it forwards."""

from __future__ import annotations

import json
from pathlib import Path

from leo_runtime.bot import BotContext
from leo_runtime.bots.filter import Filter
from leo_runtime.events import Event, dumps


def run_filter(query: dict, payloads: list) -> list:
    settings = Filter.Settings.model_validate({"query": query})
    ctx = BotContext(bot_id="f", pipeline="p", base_dir=Path("."))
    bot = Filter(settings, ctx)
    events = [Event(i + 1, "q", dumps(p), None, 0) for i, p in enumerate(payloads)]
    return [event.payload for event in bot.process(iter(events), ctx)]


def test_a_change_record_is_matched_on_its_data_and_anything_else_as_it_is() -> None:
    change = {"object_type": "inventory", "key": "S1", "op": "updated", "version": 2, "data": {"quantity": 2}}
    not_a_change = {"op": "x", "quantity": 2}  # no object_type/data: matched as it is
    big_change = {**change, "data": {"quantity": 50}}
    assert run_filter({"quantity": {"lt": 5}}, [change, big_change, not_a_change, {"quantity": 9}, [1], "s"]) == [
        change,
        not_a_change,
    ]


def test_the_envelope_as_json_is_the_envelope_as_a_mapping() -> None:
    event = Event(42, "q", '{"b": 1,  "a": [1, 2]}', 1795720233000, 1795720233123, '{"source":"x","start":7,"units":1}')
    assert json.loads(event.to_json()) == event.to_dict()
    assert event.to_dict()["eid"] == "z/2026/11/26/19/10/1795720233123-0000042"
    assert '"payload":{"b": 1,  "a": [1, 2]}' in event.to_json()  # the stored text, spliced
