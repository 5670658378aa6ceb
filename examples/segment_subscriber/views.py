"""Each customer's current segment: kept in memory, or in a SQLite file that outlives a restart.

Both apply the same rule (:func:`~examples.segment_subscriber.changes.is_newer`): a change
replaces the one kept for its customer only when its sequence is higher.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Protocol

from examples.segment_subscriber.changes import SegmentChange, is_newer

__all__ = ["MemoryView", "SegmentView", "SqliteView"]


class SegmentView(Protocol):
    """Where the current segment of each customer is kept."""

    #: Whether what was applied survives a restart once :meth:`commit` returned (the
    #: consumer commits its offsets only then).
    durable: bool

    def apply(self, change: SegmentChange) -> bool:
        """Keep ``change`` if it is newer than the customer's; return whether it was kept."""
        ...

    def get(self, customer_id: str) -> SegmentChange | None:
        """The change kept for ``customer_id``, None for a customer not seen."""
        ...

    def current(self) -> dict[str, SegmentChange]:
        """The kept change of every customer seen."""
        ...

    def commit(self) -> None:
        """Make what was applied so far durable (nothing to do in memory)."""
        ...

    def close(self) -> None:
        """Release the view's resources."""
        ...


class MemoryView:
    """The current segments in a dict: lost at exit, so the consumer reads the topic again."""

    durable = False

    def __init__(self) -> None:
        self._changes: dict[str, SegmentChange] = {}

    def apply(self, change: SegmentChange) -> bool:
        """Keep ``change`` if it is newer than the customer's; return whether it was kept."""
        if not is_newer(change, self._changes.get(change.customer_id)):
            return False
        self._changes[change.customer_id] = change
        return True

    def get(self, customer_id: str) -> SegmentChange | None:
        """The change kept for ``customer_id``, None for a customer not seen."""
        return self._changes.get(customer_id)

    def current(self) -> dict[str, SegmentChange]:
        """The kept change of every customer seen."""
        return dict(self._changes)

    def commit(self) -> None:
        """Nothing to make durable."""

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    customer_id TEXT PRIMARY KEY,
    segment TEXT NOT NULL,
    previous_segment TEXT,
    sequence INTEGER NOT NULL,
    reason TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    model_version TEXT NOT NULL
)
"""

# The rule in one statement: the row is written only for a new customer or a higher sequence.
_UPSERT = """
INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (customer_id) DO UPDATE SET
    segment = excluded.segment,
    previous_segment = excluded.previous_segment,
    sequence = excluded.sequence,
    reason = excluded.reason,
    occurred_at = excluded.occurred_at,
    model_version = excluded.model_version
WHERE excluded.sequence > segments.sequence
"""

_COLUMNS = "customer_id, segment, previous_segment, sequence, reason, occurred_at, model_version"


class SqliteView:
    """The current segments in a SQLite file (table ``segments``, one row per customer).

    Other programs can read the file while the subscriber runs, e.g.
    ``sqlite3 segments.db "SELECT segment, count(*) FROM segments GROUP BY segment"``.
    """

    durable = True

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute(_SCHEMA)
        self._db.commit()

    def apply(self, change: SegmentChange) -> bool:
        """Keep ``change`` if it is newer than the customer's; return whether it was kept."""
        cursor = self._db.execute(
            _UPSERT,
            (
                change.customer_id,
                change.segment,
                change.previous_segment,
                change.sequence,
                change.reason,
                change.occurred_at.isoformat(),
                change.model_version,
            ),
        )
        return cursor.rowcount == 1

    def get(self, customer_id: str) -> SegmentChange | None:
        """The change kept for ``customer_id``, None for a customer not seen."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM segments WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return None if row is None else _change(row)

    def current(self) -> dict[str, SegmentChange]:
        """The kept change of every customer seen."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM segments ORDER BY customer_id")
        return {row[0]: _change(row) for row in rows}

    def commit(self) -> None:
        """Write what was applied to the file."""
        self._db.commit()

    def close(self) -> None:
        """Close the file (what was not committed is lost, and read again from the topic)."""
        self._db.close()


def _change(row: tuple[str, str, str | None, int, str, str, str]) -> SegmentChange:
    customer_id, segment, previous, sequence, reason, occurred_at, model_version = row
    return SegmentChange(
        customer_id=customer_id,
        segment=segment,
        previous_segment=previous,
        sequence=sequence,
        reason=reason,
        occurred_at=datetime.fromisoformat(occurred_at),
        model_version=model_version,
    )
