"""Malformed events go to the dead-letter topic with a reason; good events around them apply."""

from __future__ import annotations

import json
from pathlib import Path

from stream_app.core.events import DeadLetter
from stream_app.settings import Settings
from tests.integration.streaming import counters, full_states, read_topic, replay, running_worker


def _event(event_id: str, customer: str, **changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": event_id,
        "kind": "purchase",
        "order_id": event_id,
        "customer_id": customer,
        "occurred_at": "2011-03-01T10:00:00+00:00",
        "country": "France",
        "lines": [{"sku": "22423", "description": "CAKESTAND", "quantity": 2, "unit_price": 10.0}],
    }
    event.update(changes)
    return event


def _line(**changes: object) -> list[dict[str, object]]:
    line: dict[str, object] = {"sku": "22423", "quantity": 1, "unit_price": 5.0}
    line.update(changes)
    return [line]


BAD = {
    "not json": b"{this is not json",
    "json array": b"[1, 2, 3]",
    "missing customer": json.dumps(
        {k: v for k, v in _event("b3", "x").items() if k != "customer_id"}
    ).encode(),
    "zero quantity": json.dumps(_event("b4", "x", lines=_line(quantity=0))).encode(),
    "negative quantity": json.dumps(_event("b5", "x", lines=_line(quantity=-3))).encode(),
    "nan price": json.dumps(_event("b6", "x", lines=_line(unit_price=float("nan")))).encode(),
    "infinite price": json.dumps(_event("b7", "x", lines=_line(unit_price=float("inf")))).encode(),
    "negative price": json.dumps(_event("b8", "x", lines=_line(unit_price=-1.0))).encode(),
    "absurd date": json.dumps(_event("b9", "x", occurred_at="1900-01-01T00:00:00Z")).encode(),
    "far future date": json.dumps(_event("b10", "x", occurred_at="2999-01-01T00:00:00Z")).encode(),
    "unknown kind": json.dumps(_event("b11", "x", kind="refund")).encode(),
    "no lines": json.dumps(_event("b12", "x", lines=[])).encode(),
}


def test_invalid_events_are_dead_lettered_and_the_worker_goes_on(
    stack_settings: Settings, tmp_path: Path
) -> None:
    good_before = json.dumps(_event("g1", "good1")).encode()
    good_after = json.dumps(_event("g2", "good2")).encode()
    events = [(b"good1", good_before)]
    events += [(b"x", payload) for payload in BAD.values()]
    events += [(b"good2", good_after)]

    settings = stack_settings.model_copy(update={"model_dir": tmp_path / "no-model"})
    with running_worker(settings, tmp_path / "worker.log") as worker:
        replay(settings, events, timeout_s=120)
        letters = [
            DeadLetter.model_validate_json(value)
            for _, value in read_topic(settings, settings.dlq_topic)
        ]
        assert worker.process.poll() is None, worker.log()

    assert len(letters) == len(BAD)
    by_payload = {letter.payload.encode(): letter for letter in letters}
    for name, payload in BAD.items():
        letter = by_payload[payload]
        assert letter.reason, name
        assert letter.topic == settings.orders_topic
        assert letter.offset >= 0 and letter.partition >= 0
    reasons = " | ".join(letter.reason for letter in letters)
    assert "not JSON" in reasons
    assert "customer_id" in reasons
    assert "quantity" in reasons
    assert "unit_price" in reasons
    assert "occurred_at" in reasons

    states = full_states(settings)
    assert set(states) == {"good1", "good2"}
    assert all(state.frequency == 1 and state.monetary == 20.0 for state in states.values())
    assert counters(settings)["dead_letters"] == len(BAD)
