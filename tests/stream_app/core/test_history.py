"""A customer's segment at a past date, read from their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.core.events import SegmentChange
from stream_app.core.history import segment_as_of

START = datetime(2011, 6, 1, 10, tzinfo=UTC)


def _change(segment: str, day: int) -> SegmentChange:
    return SegmentChange.model_validate(
        {
            "customer_id": "c",
            "previous_segment": None,
            "segment": segment,
            "reason": "order",
            "rfm": {"recency_days": 0, "frequency": 1, "monetary": 1.0},
            "model_version": "v",
            "occurred_at": (START + timedelta(days=day)).isoformat(),
        }
    )


@pytest.mark.parametrize(
    ("day", "expected"), [(-1, None), (0, "new"), (5, "new"), (10, "loyal"), (99, "lost")]
)
def test_segment_as_of_a_past_date(day: int, expected: str | None) -> None:
    history: Sequence[SegmentChange] = [
        _change("lost", 50),
        _change("loyal", 10),
        _change("new", 0),
    ]
    assert segment_as_of(list(history), START + timedelta(days=day)) == expected
