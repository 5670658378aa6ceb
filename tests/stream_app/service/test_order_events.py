"""``rfm replay`` turns a transactions frame into one order event per invoice."""

from __future__ import annotations

import json
from typing import Any

from stream_app.core.events import parse_order_event
from stream_app.service.order_events import build_events
from tests.conftest import FrameBuilder, Row

UK = "United Kingdom"


def decoded(events: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(value) for _, value in events]


def by_id(events: list[tuple[bytes, bytes]]) -> dict[str, dict[str, Any]]:
    return {event["event_id"]: event for event in decoded(events)}


def test_one_event_per_invoice(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK),
            ("536365", "71053", "LANTERN", 6, "2010-12-01 08:26:00", 3.39, "17850", UK),
            ("536365", "POST", "POSTAGE", 1, "2010-12-01 08:26:00", 18.0, "17850", UK),
            ("536366", "22633", "HAND WARMER", 6, "2010-12-01 08:28:00", 1.85, "17850", UK),
        ]
    )
    plan = build_events(frame)
    assert plan.counts["events"] == len(plan.events) == 2
    events = by_id(plan.events)
    assert set(events) == {"536365", "536366"}
    first = events["536365"]
    assert first["kind"] == "purchase"
    assert first["order_id"] == "536365"
    assert first["customer_id"] == "17850"
    assert first["country"] == UK
    assert first["occurred_at"] == "2010-12-01T08:26:00+00:00"
    # Non-product lines travel with the event: the stream skips and counts them.
    assert [(line["sku"], line["quantity"], line["unit_price"]) for line in first["lines"]] == [
        ("85123A", 6, 2.55),
        ("71053", 6, 3.39),
        ("POST", 1, 18.0),
    ]
    assert first["lines"][0]["description"] == "HEART"
    assert len(events["536366"]["lines"]) == 1


def test_every_event_is_a_valid_order_event(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK),
            ("C536379", "85123A", "HEART", -2, "2010-12-01 09:41:00", 2.55, "17850", UK),
            ("536380", "22961", "JAM JAR", 3, "2010-12-01 09:45:00", 0.0, "14688", "France"),
        ]
    )
    for key, value in build_events(frame).events:
        event = parse_order_event(value)
        assert event.customer_id == key.decode()


def test_c_invoices_become_returns_with_positive_quantities(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK),
            ("C536379", "85123A", "HEART", -2, "2010-12-01 09:41:00", 2.55, "17850", UK),
            ("C536379", "D", "Discount", -1, "2010-12-01 09:41:00", 27.5, "17850", UK),
        ]
    )
    events = by_id(build_events(frame).events)
    ret = events["C536379"]
    assert ret["kind"] == "return"
    assert [(line["sku"], line["quantity"]) for line in ret["lines"]] == [("85123A", 2), ("D", 1)]
    assert events["536365"]["kind"] == "purchase"


def test_lines_whose_sign_disagrees_with_the_invoice_are_dropped(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK),
            ("536365", "71053", "LANTERN", -1, "2010-12-01 08:26:00", 3.39, "17850", UK),
            ("536365", "22633", "WARMER", 0, "2010-12-01 08:26:00", 1.85, "17850", UK),
            ("C536379", "85123A", "HEART", 2, "2010-12-01 09:41:00", 2.55, "17850", UK),
            ("536390", "22961", "JAM JAR", 3, "2010-12-01 10:00:00", -1.0, "17850", UK),
        ]
    )
    plan = build_events(frame)
    assert plan.counts["inconsistent_quantity"] == 3
    assert plan.counts["negative_price"] == 1
    [event] = decoded(plan.events)
    assert [line["sku"] for line in event["lines"]] == ["85123A"]


def test_unattributable_rows_are_dropped_and_counted(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK),
            ("536365", "71053", None, 6, "2010-12-01 08:26:00", 3.39, "17850", UK),
            ("536366", "22633", "WARMER", 6, "2010-12-01 08:28:00", 1.85, None, UK),
            ("536367", "22634", "WARMER", 6, "2010-12-01 08:30:00", 1.85, None, UK),
        ]
    )
    plan = build_events(frame)
    assert plan.counts["missing_customer_or_description"] == 3
    [event] = decoded(plan.events)
    assert [line["sku"] for line in event["lines"]] == ["85123A"]


def test_exact_duplicate_rows_are_dropped(make_frame: FrameBuilder) -> None:
    line: Row = ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850", UK)
    # Same invoice and item but another quantity: not a duplicate.
    other: Row = ("536365", "85123A", "HEART", 5, "2010-12-01 08:26:00", 2.55, "17850", UK)
    plan = build_events(make_frame([line, line, other, line]))
    assert plan.counts["duplicate_lines"] == 2
    [event] = decoded(plan.events)
    assert [item["quantity"] for item in event["lines"]] == [6, 5]


def test_invoice_time_is_the_earliest_attributable_line(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            # Not attributable: does not set the invoice's time.
            ("536365", "10002", None, 1, "2010-12-01 08:25:00", 0.85, "17850", UK),
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:27:00", 2.55, "17850", UK),
            ("536365", "71053", "LANTERN", 6, "2010-12-01 08:26:00", 3.39, "17850", UK),
        ]
    )
    [event] = decoded(build_events(frame).events)
    assert event["occurred_at"] == "2010-12-01T08:26:00+00:00"
    assert [line["sku"] for line in event["lines"]] == ["85123A", "71053"]


def test_events_are_ordered_by_invoice_time(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536369", "22633", "WARMER", 1, "2011-01-05 10:00:00", 1.85, "12", UK),
            ("536370", "85123A", "HEART", 1, "2011-01-05 09:00:00", 2.55, "11", UK),
            ("536371", "85123A", "HEART", 1, "2010-12-24 09:00:00", 2.55, "13", UK),
            ("536372", "85123A", "HEART", 1, "2011-01-05 09:00:00", 2.55, "14", UK),
            ("536368", "85123A", "HEART", 1, "2011-01-05 09:00:00", 2.55, "15", UK),
        ]
    )
    events = decoded(build_events(frame).events)
    assert [event["event_id"] for event in events] == [
        "536371",
        "536368",
        "536370",
        "536372",
        "536369",
    ]
    times = [event["occurred_at"] for event in events]
    assert times == sorted(times)


def test_keys_are_customer_ids(make_frame: FrameBuilder) -> None:
    frame = make_frame(
        [
            ("536365", "85123A", "HEART", 6, "2010-12-01 08:26:00", 2.55, "17850.0", UK),
            ("536366", "85123A", "HEART", 6, "2010-12-01 08:27:00", 2.55, "13047", "France"),
        ]
    )
    plan = build_events(frame)
    assert [key for key, _ in plan.events] == [b"17850", b"13047"]
    assert [event["customer_id"] for event in decoded(plan.events)] == ["17850", "13047"]
    assert decoded(plan.events)[1]["country"] == "France"


def test_shuffle_seed_permutes_deterministically(make_frame: FrameBuilder) -> None:
    rows: list[Row] = [
        (
            str(536400 + n),
            "85123A",
            "HEART",
            1 + n,
            f"2011-02-{1 + n:02d} 09:00:00",
            2.5,
            str(n),
            UK,
        )
        for n in range(20)
    ]
    frame = make_frame(rows)
    ordered = build_events(frame).events
    shuffled = build_events(frame, shuffle_seed=7)
    again = build_events(frame, shuffle_seed=7)
    other = build_events(frame, shuffle_seed=8)
    assert shuffled.events == again.events
    assert shuffled.events != ordered
    assert other.events != shuffled.events
    assert sorted(shuffled.events) == sorted(ordered) == sorted(other.events)
    assert shuffled.counts == build_events(frame).counts
