"""Read a customer's segment history (pure): which segment they were in at a past moment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from stream_app.core.events import SegmentChange

__all__ = ["segment_as_of"]


def segment_as_of(history: Iterable[SegmentChange], moment: datetime) -> str | None:
    """The segment a customer was in at ``moment``, from their history (newest first).

    Parameters
    ----------
    history
        The customer's segment changes, newest first, as the store keeps them.
    moment
        A timezone-aware time.

    Returns
    -------
    str or None
        The segment of the newest change at or before ``moment``; None when there is none
        (the customer had no segment yet, or the change is older than the bounded history
        keeps).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> def change(segment: str, day: int) -> SegmentChange:
    ...     return SegmentChange.model_validate({
    ...         "customer_id": "c", "previous_segment": None, "segment": segment,
    ...         "reason": "order", "model_version": "v",
    ...         "rfm": {"recency_days": 0, "frequency": 1, "monetary": 1.0},
    ...         "occurred_at": datetime(2011, 6, day, tzinfo=UTC)})
    >>> history = [change("loyal", 20), change("new", 1)]
    >>> segment_as_of(history, datetime(2011, 6, 10, tzinfo=UTC))
    'new'
    >>> segment_as_of(history, datetime(2011, 6, 20, tzinfo=UTC))
    'loyal'
    >>> segment_as_of(history, datetime(2011, 5, 1, tzinfo=UTC)) is None
    True
    """
    for change in history:
        if change.occurred_at <= moment:
            return change.segment
    return None
