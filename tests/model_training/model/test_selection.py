"""Model selection on synthetic blobs."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from model_training.exceptions import ModelTrainingError
from model_training.model.selection import (
    COMPARISON_COLUMNS,
    best_row,
    compare_methods,
    fit_space,
    score_labels,
)


def _three_groups(seed: int = 0) -> npt.NDArray[np.float64]:
    """RFM-like customers in three groups well apart in log space."""
    rng = np.random.default_rng(seed)
    centres = [(5.0, 20.0, 8000.0), (60.0, 4.0, 900.0), (300.0, 1.0, 80.0)]
    groups = [
        np.column_stack([rng.lognormal(np.log(c), 0.12, (150, 3))[:, i] for i, c in enumerate(c3)])
        for c3 in centres
    ]
    return np.vstack(groups)


def test_finds_three_groups_and_reports_every_candidate() -> None:
    _, z = fit_space(_three_groups(), trim_quantile=None)
    table = compare_methods(z, k_values=range(2, 6))
    assert list(table.columns) == COMPARISON_COLUMNS
    assert len(table) == 3 * 4
    assert table["chosen"].sum() == 1
    best = best_row(table)
    assert int(best["k"]) == 3
    assert best["silhouette"] == table["silhouette"].max()
    assert (table["davies_bouldin"] > 0).all()


def test_fit_space_trims_top_tail() -> None:
    x = _three_groups()
    keep, z = fit_space(x)
    assert keep.sum() < len(x)
    assert z.shape == (keep.sum(), 3)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)


def test_single_cluster_cannot_be_scored() -> None:
    z = np.arange(12.0).reshape(6, 2)
    assert all(math.isnan(value) for value in score_labels(z, [0] * 6))


def test_too_few_distinct_profiles_raise() -> None:
    z = np.zeros((6, 3))
    with pytest.raises(ModelTrainingError, match="no model could be scored"):
        compare_methods(z, methods=("kmeans",), k_values=[4])
