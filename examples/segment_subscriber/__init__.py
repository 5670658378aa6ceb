"""A subscriber of the segment changes: each customer's current segment, by sequence.

Run it with ``python -m examples.segment_subscriber --help``; README.md beside this file says
how to copy it.
"""

from examples.segment_subscriber.changes import (
    InvalidChange,
    SegmentChange,
    is_newer,
    parse_change,
)
from examples.segment_subscriber.subscriber import Counts, KafkaConfig, follow, make_consumer
from examples.segment_subscriber.views import MemoryView, SegmentView, SqliteView

__all__ = [
    "Counts",
    "InvalidChange",
    "KafkaConfig",
    "MemoryView",
    "SegmentChange",
    "SegmentView",
    "SqliteView",
    "follow",
    "is_newer",
    "make_consumer",
    "parse_change",
]
