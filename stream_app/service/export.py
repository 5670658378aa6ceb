"""Read the live state back: ``rfm export``, ``rfm segments`` and ``rfm customer``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from stream_app.core.scoring import SegmentModel, rfm_matrix
from stream_app.service.ports import CustomerStore
from stream_app.service.snapshot import customers_with_rfm

__all__ = [
    "EXPORT_COLUMNS",
    "export_frame",
    "segment_counts",
    "write_export",
]

#: The columns of ``rfm.csv``, shared with ``rfm train``.
EXPORT_COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "segment"]


async def export_frame(
    store: CustomerStore, t_ref: float, model: SegmentModel | None
) -> pd.DataFrame:
    """Every customer with RFM at ``t_ref`` (epoch seconds), sorted by customer id.

    ``segment`` is what ``model`` assigns at ``t_ref`` (as ``rfm train`` does); without a
    model it is the segment stored by the stream (empty where there is none).
    """
    states = await customers_with_rfm(store)
    matrix = rfm_matrix(states, t_ref)
    if model is not None and states:
        segments = [str(name) for name in model.predict_segments(matrix)]
    else:
        segments = [state.segment or "" for state in states]
    frame = pd.DataFrame(
        {
            "customer_id": [state.customer_id for state in states],
            "recency_days": matrix[:, 0].astype("int64"),
            "frequency": matrix[:, 1].astype("int64"),
            "monetary": np.round(matrix[:, 2], 2),
            "segment": segments,
        },
        columns=EXPORT_COLUMNS,
    )
    return frame


def write_export(frame: pd.DataFrame, path: Path) -> None:
    """Write an export in the ``rfm.csv`` format (monetary with two decimals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.2f")


async def segment_counts(store: CustomerStore) -> Counter[str]:
    """How many customers each stored segment holds (``(none)`` for customers without one)."""
    counts: Counter[str] = Counter()
    async for batch in store.scan():
        for state in batch:
            if state.has_rfm:
                counts[state.segment or "(none)"] += 1
    return counts
