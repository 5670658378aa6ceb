"""Order events are validated at the edge; a bad one is rejected with a reason naming the field."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.core.events import (
    EARLIEST_EVENT_TIME,
    LATEST_EVENT_TIME,
    InvalidEvent,
    OrderEvent,
    OrderLine,
    RFMValues,
    SegmentChange,
    parse_order_event,
)

DESIGN_EVENT = (
    '{"event_id": "536365", "kind": "purchase", "order_id": "536365", "customer_id": "17850",'
    ' "occurred_at": "2010-12-01T08:26:00+00:00", "country": "United Kingdom",'
    ' "lines": [{"sku": "85123A", "description": "WHITE HANGING HEART T-LIGHT HOLDER",'
    ' "quantity": 6, "unit_price": 2.55}]}'
)


def event_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DESIGN_EVENT)
    data.update(changes)
    return data


def with_line(**changes: Any) -> dict[str, Any]:
    data = event_dict()
    data["lines"] = [{**data["lines"][0], **changes}]
    return data


def reason_for(payload: bytes | str) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_order_event(payload)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_design_example_is_accepted() -> None:
    event = parse_order_event(DESIGN_EVENT)
    assert event.event_id == "536365"
    assert event.kind == "purchase"
    assert event.customer_id == "17850"
    assert event.country == "United Kingdom"
    assert event.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert event.lines == [
        OrderLine(
            sku="85123A",
            description="WHITE HANGING HEART T-LIGHT HOLDER",
            quantity=6,
            unit_price=2.55,
        )
    ]


def test_bytes_and_text_are_both_accepted() -> None:
    assert parse_order_event(DESIGN_EVENT.encode()) == parse_order_event(DESIGN_EVENT)


def test_return_kind_is_accepted() -> None:
    event = parse_order_event(json.dumps(event_dict(kind="return", event_id="C536379")))
    assert event.kind == "return"
    assert event.lines[0]["quantity"] == 6


def test_offset_times_are_converted_to_utc() -> None:
    event = parse_order_event(json.dumps(event_dict(occurred_at="2010-12-01T10:26:00+02:00")))
    assert event.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_naive_times_are_taken_as_utc() -> None:
    event = parse_order_event(json.dumps(event_dict(occurred_at="2010-12-01T08:26:00")))
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    event = parse_order_event(json.dumps(event_dict(channel="web")))
    assert not hasattr(event, "channel")


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"event_id": "1",', b"", b"   \n", b'{"event_id": "\x80"}', b"{'a': 1}"],
)
def test_not_json_is_rejected(payload: bytes) -> None:
    # Undecodable bytes may be reported as either; both say what is wrong with the text.
    assert re.match(r"not (JSON|UTF-8)", reason_for(payload))


@pytest.mark.parametrize("payload", [b"[1, 2, 3]", b'"text"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(payload: bytes) -> None:
    assert reason_for(payload).startswith("not a JSON object")


@pytest.mark.parametrize(
    "field", ["event_id", "kind", "order_id", "customer_id", "occurred_at", "lines"]
)
def test_missing_field_is_rejected_by_name(field: str) -> None:
    data = event_dict()
    del data[field]
    reason = reason_for(json.dumps(data))
    assert reason.startswith("schema violation")
    assert field in reason
    assert "Field required" in reason


@pytest.mark.parametrize("field", ["sku", "quantity", "unit_price"])
def test_missing_line_field_is_rejected_by_name(field: str) -> None:
    data = event_dict()
    del data["lines"][0][field]
    assert f"lines.0.{field}" in reason_for(json.dumps(data))


def test_empty_lines_are_rejected() -> None:
    assert "lines" in reason_for(json.dumps(event_dict(lines=[])))


@pytest.mark.parametrize("quantity", [0, -1, -6])
def test_non_positive_quantity_is_rejected(quantity: int) -> None:
    assert "lines.0.quantity" in reason_for(json.dumps(with_line(quantity=quantity)))


@pytest.mark.parametrize("price", ["NaN", "Infinity", "-Infinity", "-0.01"])
def test_bad_price_is_rejected(price: str) -> None:
    # json.dumps would refuse NaN only with allow_nan=False; write the token by hand.
    payload = json.dumps(with_line(unit_price=0.5)).replace("0.5", price)
    assert "lines.0.unit_price" in reason_for(payload)


def test_zero_price_is_a_valid_line() -> None:
    # Zero-price lines are valid input, skipped (and counted) when the effect is computed.
    assert parse_order_event(json.dumps(with_line(unit_price=0))).lines[0]["unit_price"] == 0


@pytest.mark.parametrize(
    "when",
    [
        "1970-01-01T00:00:00+00:00",
        "1989-12-31T23:59:59+00:00",
        "2100-01-01T00:00:00+00:00",
        "2999-06-01T00:00:00+00:00",
        "0001-01-01T00:00:00",
    ],
)
def test_absurd_dates_are_rejected(when: str) -> None:
    reason = reason_for(json.dumps(event_dict(occurred_at=when)))
    assert "occurred_at" in reason
    assert "outside" in reason


@pytest.mark.parametrize("when", ["1990-01-01T00:00:00+00:00", "2099-12-31T23:59:59+00:00"])
def test_dates_at_the_edges_are_accepted(when: str) -> None:
    assert parse_order_event(json.dumps(event_dict(occurred_at=when))).occurred_at.year in (
        1990,
        2099,
    )


def test_unparseable_date_is_rejected() -> None:
    assert "occurred_at" in reason_for(json.dumps(event_dict(occurred_at="yesterday")))


@pytest.mark.parametrize("kind", ["refund", "PURCHASE", "", "cancel"])
def test_unknown_kind_is_rejected(kind: str) -> None:
    reason = reason_for(json.dumps(event_dict(kind=kind)))
    assert "kind" in reason


@pytest.mark.parametrize("customer", ["17{850}", "{17850", "178 50", "17850\t", " ", "", "a}"])
def test_customer_id_that_breaks_the_hash_tag_is_rejected(customer: str) -> None:
    assert "customer_id" in reason_for(json.dumps(event_dict(customer_id=customer)))


@pytest.mark.parametrize("field", ["event_id", "order_id"])
def test_empty_ids_are_rejected(field: str) -> None:
    assert field in reason_for(json.dumps(event_dict(**{field: ""})))


def test_wrong_type_is_rejected() -> None:
    assert "lines.0.quantity" in reason_for(json.dumps(with_line(quantity="six")))


# --- properties -----------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20)
_CUSTOMER = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=["Zs", "Zl", "Zp", "Cc"], exclude_characters="{}"
    ),
    min_size=1,
    max_size=20,
).filter(lambda text: not any(char.isspace() for char in text))
_TIMES = st.datetimes(
    min_value=EARLIEST_EVENT_TIME.replace(tzinfo=None),
    max_value=(LATEST_EVENT_TIME - timedelta(seconds=1)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
_LINES = st.builds(
    OrderLine,
    sku=st.text(alphabet=string.ascii_uppercase + string.digits + " ", min_size=1, max_size=12),
    description=st.none() | _TEXT,
    quantity=st.integers(min_value=1, max_value=100_000),
    unit_price=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
_EVENTS = st.builds(
    OrderEvent,
    event_id=_TEXT,
    kind=st.sampled_from(["purchase", "return"]),
    order_id=_TEXT,
    customer_id=_CUSTOMER,
    occurred_at=_TIMES,
    country=st.none() | _TEXT,
    lines=st.lists(_LINES, min_size=1, max_size=5),
)


@settings(max_examples=50, deadline=None)
@given(event=_EVENTS)
def test_valid_events_round_trip(event: OrderEvent) -> None:
    assert parse_order_event(event.model_dump_json()) == event
    assert parse_order_event(event.model_dump_json().encode()) == event


@settings(max_examples=50, deadline=None)
@given(
    offset_minutes=st.integers(min_value=-12 * 60, max_value=14 * 60),
    when=st.datetimes(
        min_value=datetime(1991, 1, 1), max_value=datetime(2098, 12, 31), timezones=st.just(UTC)
    ),
)
def test_any_offset_gives_the_same_instant(offset_minutes: int, when: datetime) -> None:
    local = when.astimezone(timezone(timedelta(minutes=offset_minutes)))
    event = parse_order_event(json.dumps(event_dict(occurred_at=local.isoformat())))
    assert event.occurred_at == when
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_segment_change_round_trips_through_json() -> None:
    change = SegmentChange(
        customer_id="17850",
        previous_segment="promising",
        segment="loyal",
        reason="order",
        rfm=RFMValues(recency_days=2, frequency=7, monetary=4310.0),
        model_version="2011-12-10T00:00:00Z-3f2a",
        occurred_at=datetime(2011, 12, 8, 10, 5, tzinfo=UTC),
        sequence=3,
    )
    text = change.model_dump_json()
    assert SegmentChange.model_validate_json(text) == change
    data = json.loads(text)
    assert data["previous_segment"] == "promising"
    assert data["rfm"] == {"recency_days": 2, "frequency": 7, "monetary": 4310.0}


def test_first_segment_change_has_null_previous_segment() -> None:
    design = (
        '{"customer_id": "17850", "previous_segment": null, "segment": "new",'
        ' "reason": "order", "rfm": {"recency_days": 2, "frequency": 1, "monetary": 10.0},'
        ' "model_version": "v1", "occurred_at": "2011-12-08T10:05:00+00:00"}'
    )
    change = SegmentChange.model_validate_json(design)
    assert change.previous_segment is None
    assert change.sequence == 0
    assert json.loads(change.model_dump_json())["previous_segment"] is None
    assert SegmentChange.model_validate_json(change.model_dump_json()) == change
