"""What describes a fitted model: the segment table and the model card.

``rfm train`` and the stream's retraining build both with these functions, so a card looks
the same whichever of them wrote it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_training.fitting import FitExtras
from model_training.model.artifact import library_versions
from model_training.model.features import FEATURES
from model_training.model.naming import SEGMENT_NAMES, action_for, label_for
from model_training.model.segmenter import RFMSegmenter

__all__ = ["SEGMENT_COLUMNS", "TRANSFORM_DESCRIPTIONS", "model_card", "segment_table"]

#: The segment table's columns, as the card and the report show them.
SEGMENT_COLUMNS = [
    "name",
    "label",
    "size",
    "share",
    "revenue_share",
    "recency_days",
    "recency_days_median",
    "frequency",
    "frequency_median",
    "monetary",
    "monetary_median",
    "action",
]
TRANSFORM_DESCRIPTIONS = {
    "log": "log1p(max(x, 0)) per feature, then standard scaling (fitted on trimmed customers)",
    "standard": "standard scaling of raw RFM (fitted on trimmed customers), as the reference",
}


def segment_table(
    rfm_frame: pd.DataFrame, names: npt.ArrayLike, segmenter: RFMSegmenter
) -> pd.DataFrame:
    """Summarise the segments over all customers: size, shares, mean and median RFM, action.

    Parameters
    ----------
    rfm_frame
        One row per customer, RFM columns.
    names
        Each customer's segment name (same order).
    segmenter
        The model (for the list of segments, in label order, including empty ones).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SEGMENT_COLUMNS`, one row per segment in label order: ``label`` is
        the human label of the name, ``recency_days``, ``frequency`` and ``monetary`` are
        means, the ``*_median`` columns medians (NaN for an empty segment).
    """
    frame = rfm_frame[list(FEATURES)].assign(segment=np.asarray(names))
    total_revenue = float(frame["monetary"].clip(lower=0).sum())
    rows = []
    for label in sorted(segmenter.segment_names_):
        name = segmenter.segment_names_[label]
        members = frame[frame["segment"] == name]
        revenue = float(members["monetary"].clip(lower=0).sum())
        row: dict[str, object] = {
            "name": name,
            "label": label_for(name),
            "size": len(members),
            "share": len(members) / len(frame) if len(frame) else 0.0,
            "revenue_share": revenue / total_revenue if total_revenue > 0 else 0.0,
        }
        for feature in FEATURES:
            row[feature] = float(members[feature].mean())
            row[f"{feature}_median"] = float(members[feature].median())
        row["action"] = action_for(name) if name in SEGMENT_NAMES else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def model_card(
    *,
    version: str,
    method: str,
    segmenter: RFMSegmenter,
    extras: FitExtras,
    segments: pd.DataFrame,
    t_ref: datetime,
    n_customers: int,
    cleaning: dict[str, int],
    comparison: pd.DataFrame,
    non_product_pattern: str,
) -> dict[str, Any]:
    """Build the model card ``rfm train`` writes (the stream's retrain writes the same one).

    Parameters
    ----------
    version
        Model version id.
    method
        How the model was chosen (``"auto"`` or ``"seed"``).
    segmenter
        The fitted model.
    extras
        What fitting found (quality figures).
    segments
        The segment table, from :func:`segment_table`.
    t_ref
        Reference time of the RFM.
    n_customers
        Customers scored.
    cleaning
        Cleaning counts (empty when trained from RFM state rather than a file).
    comparison
        Scores of every candidate.
    non_product_pattern
        The product rule the RFM was computed with (:class:`~model_training.data.rules.ProductRule`
        pattern): a worker whose rule differs warns at start-up.

    Returns
    -------
    dict
        The card, JSON-ready once passed through :func:`~model_training.artifact.save_model`.
    """
    quality = dict(extras.quality)
    return {
        "version": version,
        "method": segmenter.method,
        "selection": method,
        "k": int(segmenter.n_clusters),
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "t_ref": pd.Timestamp(t_ref).isoformat(),
        "n_customers": n_customers,
        "n_fit_customers": int(segmenter.fit_mask_.sum()),
        "trim": {"quantile": segmenter.trim_quantile, "columns": ["frequency", "monetary"]},
        "n_segments": int(segmenter.n_clusters),
        "silhouette": quality.get("silhouette"),
        "classifier_accuracy": segmenter.classifier_accuracy_,
        "segments": [
            {key: row[key] for key in SEGMENT_COLUMNS} for row in segments.to_dict("records")
        ],
        "non_product_pattern": non_product_pattern,
        "cleaning": cleaning,
        "features": list(FEATURES),
        "transform": TRANSFORM_DESCRIPTIONS[segmenter.feature_transform],
        "quality": quality,
        "comparison": comparison.to_dict("records"),
        "random_state": segmenter.random_state,
        "libraries": library_versions(),
    }
