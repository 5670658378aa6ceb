"""Model selection: compare clustering methods and numbers of segments.

Every candidate is fitted on the same trimmed, transformed customers the final
:class:`~model_training.segmenter.RFMSegmenter` is fitted on (same functions, same
``random_state``), and scored there by silhouette (higher is better, the selection criterion),
Calinski-Harabasz (higher is better) and Davies-Bouldin (lower is better). A candidate whose
fit warns that it did not converge (or found fewer distinct clusters than k) gets no scores and
cannot be chosen. Ties on silhouette go to the earlier candidate in ``methods`` then ``k``
order, so the choice is deterministic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from model_training.exceptions import ModelTrainingError
from model_training.model.clusterers import make_clusterer
from model_training.model.features import TRIM_QUANTILE, log_features, standardise, trim_mask

__all__ = [
    "COMPARISON_COLUMNS",
    "DEFAULT_K",
    "DEFAULT_METHODS",
    "best_row",
    "compare_methods",
    "fit_space",
    "score_labels",
]

COMPARISON_COLUMNS = ["method", "k", "silhouette", "calinski_harabasz", "davies_bouldin", "chosen"]
DEFAULT_METHODS: tuple[str, ...] = ("kmeans", "gmm", "agglomerative")
DEFAULT_K = range(4, 9)

FloatArray = npt.NDArray[np.float64]


def fit_space(
    x: FloatArray,
    *,
    feature_transform: str = "log",
    trim_quantile: float | None = TRIM_QUANTILE,
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Return ``(kept-rows mask, transformed kept rows)``: the space models are fitted in.

    Parameters
    ----------
    x
        RFM matrix, shape ``(n, 3)``.
    feature_transform
        ``"log"`` or ``"standard"``, as :class:`~model_training.segmenter.RFMSegmenter`.
    trim_quantile
        As :func:`~model_training.features.trim_mask`.

    Returns
    -------
    tuple
        The boolean mask of fitting rows and their standardised features.
    """
    keep = trim_mask(x, trim_quantile)
    base = x[keep]
    if feature_transform == "log":
        base = log_features(base)
    z, _, _ = standardise(base)
    return keep, z


def score_labels(z: FloatArray, labels: npt.ArrayLike) -> tuple[float, float, float]:
    """Score a labelling: ``(silhouette, calinski_harabasz, davies_bouldin)``.

    A labelling with fewer than two clusters (or no two distinct points) cannot be scored:
    every figure is NaN.

    Examples
    --------
    >>> z = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    >>> [round(value, 3) for value in score_labels(z, [0, 0, 1, 1])]
    [0.9, 200.0, 0.1]
    """
    lab = np.asarray(labels)
    n_labels = np.unique(lab).size
    if n_labels < 2 or n_labels >= z.shape[0]:
        return math.nan, math.nan, math.nan
    return (
        float(silhouette_score(z, lab)),
        float(calinski_harabasz_score(z, lab)),
        float(davies_bouldin_score(z, lab)),
    )


def compare_methods(
    z: FloatArray,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    k_values: Iterable[int] = DEFAULT_K,
    random_state: int = 0,
    n_init: int = 10,
) -> pd.DataFrame:
    """Fit every method for every k on ``z`` and score them; mark the best silhouette.

    Parameters
    ----------
    z
        Transformed fitting rows, from :func:`fit_space`.
    methods
        Among ``kmeans``, ``gmm``, ``agglomerative``.
    k_values
        Numbers of segments to try (default 4..8).
    random_state, n_init
        Passed to the clusterers (as the final model will use them).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARISON_COLUMNS`; exactly one row has ``chosen`` True.

    Raises
    ------
    ModelTrainingError
        No candidate could be scored (too few customers or distinct profiles).
    """
    ks = [int(k) for k in k_values]
    # Single-threaded for the reason given in RFMSegmenter.fit.
    with threadpool_limits(limits=1):
        rows = _score_candidates(z, methods, ks, random_state, n_init)
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS[:-1])
    scored = table["silhouette"].notna()
    if not scored.any():
        raise ModelTrainingError(
            f"no model could be scored on {z.shape[0]} customers with k in {ks}: "
            "too few customers or distinct RFM profiles"
        )
    silhouettes = table["silhouette"].to_numpy(dtype=np.float64)
    best = int(np.nanargmax(silhouettes))  # first maximum: ties go to the earlier candidate
    table["chosen"] = np.arange(len(table)) == best
    table["k"] = table["k"].astype("int64")
    return table


def _score_candidates(
    z: FloatArray, methods: Sequence[str], ks: list[int], random_state: int, n_init: int
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for method in methods:
        for k in ks:
            if k > z.shape[0]:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                labels = make_clusterer(method, k, random_state, n_init).fit_predict(z)
            for other in caught:
                if not issubclass(other.category, ConvergenceWarning):
                    warnings.warn_explicit(
                        other.message, other.category, other.filename, other.lineno
                    )
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                # Fewer distinct profiles than k, or no convergence: not a usable candidate.
                silhouette, ch, db = math.nan, math.nan, math.nan
            else:
                silhouette, ch, db = score_labels(z, labels)
            rows.append(
                {
                    "method": method,
                    "k": k,
                    "silhouette": silhouette,
                    "calinski_harabasz": ch,
                    "davies_bouldin": db,
                }
            )
    return rows


def best_row(comparison: pd.DataFrame) -> pd.Series:
    """Return the chosen row of a comparison table."""
    chosen = comparison[comparison["chosen"].astype(bool)]
    if len(chosen) != 1:
        raise ValueError(f"expected one chosen row, found {len(chosen)}")
    return chosen.iloc[0]
