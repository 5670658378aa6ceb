"""A segment change as a subscriber reads it, and the rule that keeps the current one.

Only the standard library: the JSON is read against the published schema
(``stream_app/core/schemas/segment_change.schema.json``), taking the fields a subscriber needs
and ignoring the others, so fields the service adds later change nothing here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["InvalidChange", "SegmentChange", "is_newer", "parse_change"]


class InvalidChange(ValueError):
    """A message of the changes topic that is not a segment change (it is skipped)."""


@dataclass(frozen=True)
class SegmentChange:
    """A customer moved to another segment (the fields a subscriber keeps).

    ``sequence`` numbers a customer's changes: 1 for the first segment, one more for each
    change after it.
    """

    customer_id: str
    segment: str
    previous_segment: str | None
    sequence: int
    reason: str
    occurred_at: datetime
    model_version: str


def parse_change(value: bytes | str) -> SegmentChange:
    """Read one message value of the changes topic.

    Raises
    ------
    InvalidChange
        Not JSON, not an object, or a field the subscriber needs is missing or of the wrong
        type.

    Examples
    --------
    >>> change = parse_change('{"customer_id": "17850", "previous_segment": "promising", '
    ...     '"segment": "loyal", "reason": "order", "model_version": "v1", '
    ...     '"occurred_at": "2011-12-08T10:05:00+00:00", "sequence": 4, "rfm": {}}')
    >>> change.customer_id, change.segment, change.sequence
    ('17850', 'loyal', 4)
    """
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise InvalidChange(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidChange("not a JSON object")
    occurred_at = _field(data, "occurred_at", str)
    try:
        moment = datetime.fromisoformat(occurred_at)
    except ValueError as exc:
        raise InvalidChange(f"occurred_at: not an ISO 8601 time: {occurred_at!r}") from exc
    return SegmentChange(
        customer_id=_field(data, "customer_id", str),
        segment=_field(data, "segment", str),
        previous_segment=_field(data, "previous_segment", str, nullable=True),
        # Changes written before the field existed read as 0 (the schema's default).
        sequence=_field(data, "sequence", int, default=0),
        reason=_field(data, "reason", str),
        occurred_at=moment,
        model_version=_field(data, "model_version", str),
    )


def is_newer(change: SegmentChange, current: SegmentChange | None) -> bool:
    """Whether ``change`` replaces ``current``, the change kept so far for its customer.

    The rule of the changes topic: keep the highest sequence, drop any change whose sequence
    is not above it. A change is delivered again after a worker restarts (same sequence),
    and two workers can publish a customer's changes out of order (a lower one late).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> def change(sequence):
    ...     return SegmentChange("7", "loyal", None, sequence, "order",
    ...                          datetime(2011, 1, 1, tzinfo=UTC), "v1")
    >>> is_newer(change(1), None), is_newer(change(3), change(2))
    (True, True)
    >>> is_newer(change(2), change(2)), is_newer(change(1), change(2))
    (False, False)
    """
    return current is None or change.sequence > current.sequence


def _field(
    data: dict[str, Any], name: str, kind: type, *, nullable: bool = False, default: Any = None
) -> Any:
    if name not in data:
        if default is not None:
            return default
        raise InvalidChange(f"{name}: missing")
    value = data[name]
    if value is None and nullable:
        return None
    # bool is an int in Python, never a sequence number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidChange(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value
