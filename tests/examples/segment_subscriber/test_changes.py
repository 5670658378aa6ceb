"""The subscriber reads what the service publishes, by the published schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import stream_app.core
from examples.segment_subscriber import InvalidChange, parse_change
from examples.segment_subscriber.changes import SegmentChange as SubscriberChange
from stream_app.core.events import RFMValues, SegmentChange

SCHEMA = Path(stream_app.core.__file__).resolve().parent / "schemas/segment_change.schema.json"


def _published(**fields: object) -> SegmentChange:
    values: dict[str, object] = {
        "customer_id": "17850",
        "previous_segment": "promising",
        "segment": "loyal",
        "reason": "order",
        "rfm": RFMValues(recency_days=2, frequency=7, monetary=4310.0),
        "model_version": "2011-12-10T00:00:00Z-3f2a",
        "occurred_at": datetime(2011, 12, 8, 10, 5, tzinfo=UTC),
        "sequence": 4,
        "driver": "frequency",
    }
    values.update(fields)
    return SegmentChange(**values)  # type: ignore[arg-type]


def test_reads_what_the_service_publishes() -> None:
    change = parse_change(_published().model_dump_json().encode())
    assert change == SubscriberChange(
        customer_id="17850",
        segment="loyal",
        previous_segment="promising",
        sequence=4,
        reason="order",
        occurred_at=datetime(2011, 12, 8, 10, 5, tzinfo=UTC),
        model_version="2011-12-10T00:00:00Z-3f2a",
    )


def test_first_segment_has_no_previous() -> None:
    change = parse_change(_published(previous_segment=None, sequence=1).model_dump_json())
    assert change.previous_segment is None
    assert change.sequence == 1


def test_reads_only_fields_the_schema_guarantees() -> None:
    """What the subscriber needs is required by the schema, or has the default it assumes."""
    schema = json.loads(SCHEMA.read_text())
    needed = {"customer_id", "segment", "previous_segment", "reason", "occurred_at"}
    assert needed | {"model_version"} <= set(schema["required"])
    assert schema["properties"]["sequence"]["default"] == 0


def test_unknown_fields_are_ignored() -> None:
    data = json.loads(_published().model_dump_json())
    data["added_later"] = {"anything": [1, 2]}
    assert parse_change(json.dumps(data)).segment == "loyal"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"segment": "loyal"}', "missing"),
        (json.dumps({**json.loads(_published().model_dump_json()), "sequence": "4"}), "int"),
        (json.dumps({**json.loads(_published().model_dump_json()), "sequence": True}), "int"),
        (json.dumps({**json.loads(_published().model_dump_json()), "occurred_at": "x"}), "ISO"),
    ],
)
def test_refuses_what_is_not_a_change(value: bytes | str, reason: str) -> None:
    with pytest.raises(InvalidChange, match=reason):
        parse_change(value)
