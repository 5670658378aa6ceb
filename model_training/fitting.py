"""Choose and fit the segmentation model from an RFM frame alone.

:func:`fit_segmenter` is the model step of ``rfm train``, and the stream's retraining
(:mod:`model_training.model.refit`) calls it on the live RFM state, so both fit a model with
the very same code. No files are read or written here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.decomposition import PCA

from model_training.exceptions import ModelTrainingError
from model_training.model.features import TRIM_QUANTILE, rfm_matrix
from model_training.model.seed import SeedResult, fit_seed
from model_training.model.segmenter import RFMSegmenter
from model_training.model.selection import DEFAULT_K, best_row, compare_methods, fit_space

__all__ = ["MIN_CUSTOMERS", "FitExtras", "MethodChoice", "fit_segmenter"]

#: Below this many customers no segmentation is attempted.
MIN_CUSTOMERS = 10

MethodChoice = Literal["auto", "seed"]


@dataclass(frozen=True)
class FitExtras:
    """What model fitting found, beyond the model itself.

    Attributes
    ----------
    method
        ``"auto"`` or ``"seed"`` (how the model was chosen).
    quality
        Figures of the chosen model: ``silhouette``, ``calinski_harabasz``,
        ``davies_bouldin``, ``silhouette_space`` and, for the seed recipe, its own figures.
    view2d
        A 2-D picture of the customers: columns ``x``, ``y``, ``segment``.
    seed
        The seed recipe's full result (``None`` for ``auto``).
    fit_rows
        Positions (in the input frame) of the rows the final model was fitted on, when it was
        fitted on a sample (``max_select_rows``); ``None`` when fitted on every row.
    """

    method: str
    quality: dict[str, Any]
    view2d: pd.DataFrame
    seed: SeedResult | None = None
    fit_rows: npt.NDArray[np.int64] | None = None


def fit_segmenter(
    rfm_frame: pd.DataFrame,
    method: MethodChoice = "auto",
    *,
    k_values: Iterable[int] | None = None,
    random_state: int = 0,
    trim_quantile: float | None = TRIM_QUANTILE,
    max_select_rows: int | None = None,
) -> tuple[RFMSegmenter, pd.DataFrame, FitExtras]:
    """Choose and fit the segmentation model from an RFM frame alone.

    Parameters
    ----------
    rfm_frame
        One row per customer with columns ``recency_days``, ``frequency``, ``monetary``.
    method
        ``"auto"``: KMeans, GaussianMixture and Ward agglomerative clustering for each k,
        best silhouette wins. ``"seed"``: the reference recipe (:mod:`model_training.model.seed`).
    k_values
        Numbers of segments to try (default 4..8 for ``auto``, 2..11 for ``seed``).
    random_state
        Seed of every random step.
    trim_quantile
        Customers above this quantile of frequency or monetary are left out of the fit.
    max_select_rows
        ``auto`` only. Agglomerative clustering and the silhouette cost O(n²) time (Ward also
        O(n²) memory), so with more rows than this the candidates are compared on a
        deterministic random sample of this many rows (seeded by ``random_state``), and an
        agglomerative winner is fitted on that sample too (its classifier still places every
        customer); KMeans and Gaussian mixtures are fitted on every row. ``None`` (the
        default, as ``rfm train``) uses every row everywhere.

    Returns
    -------
    tuple
        ``(segmenter, comparison, extras)``: the fitted model, the scores of every candidate
        (columns ``method, k, silhouette, calinski_harabasz, davies_bouldin, chosen``) and a
        :class:`FitExtras`.

    Raises
    ------
    ModelTrainingError
        Too few customers, or no candidate could be scored.
    """
    x = rfm_matrix(rfm_frame)
    if x.shape[0] < MIN_CUSTOMERS:
        raise ModelTrainingError(
            f"{x.shape[0]} customers with a purchase; at least {MIN_CUSTOMERS} are needed"
        )
    if method == "seed":
        seed = (
            fit_seed(x, random_state=random_state, trim_quantile=trim_quantile)
            if k_values is None
            else fit_seed(
                x, k_values=k_values, random_state=random_state, trim_quantile=trim_quantile
            )
        )
        segmenter = seed.segmenter
        kept = x[segmenter.fit_mask_]
        view2d = _view_frame(seed.tsne_view, segmenter.predict_segments(kept))
        quality: dict[str, Any] = {
            "silhouette": seed.silhouette_tsne,
            **_scores(seed.comparison),
            "silhouette_space": "t-SNE view (perplexity 50) of standard-scaled trimmed RFM",
            "pca_explained_variance": list(seed.pca_explained_variance),
            "k_pca": seed.k_pca,
            "silhouette_pca": seed.silhouette_pca,
            "k_tsne": seed.k_tsne,
            "silhouette_tsne": seed.silhouette_tsne,
        }
        return segmenter, seed.comparison, FitExtras("seed", quality, view2d, seed)
    if method != "auto":
        raise ValueError(f"method must be 'auto' or 'seed', got {method!r}")

    sample: npt.NDArray[np.int64] | None = None
    x_select = x
    if max_select_rows is not None and x.shape[0] > max_select_rows:
        rng = np.random.default_rng(random_state)
        # Sorted so the sample keeps the input order: the same rows give the same model.
        sample = np.sort(rng.choice(x.shape[0], size=max_select_rows, replace=False))
        x_select = x[sample]
    _, z = fit_space(x_select, feature_transform="log", trim_quantile=trim_quantile)
    ks = DEFAULT_K if k_values is None else k_values
    comparison = compare_methods(z, k_values=ks, random_state=random_state)
    best = best_row(comparison)
    method_name = str(best["method"])
    if method_name != "agglomerative":
        sample, x_select = None, x  # linear-time methods learn from every row
    segmenter = RFMSegmenter(
        method=method_name,  # type: ignore[arg-type]
        n_clusters=int(best["k"]),
        feature_transform="log",
        trim_quantile=trim_quantile,
        random_state=random_state,
    ).fit(x_select)
    quality = {
        "silhouette": float(best["silhouette"]),
        **_scores(comparison),
        "silhouette_space": "log1p + standard-scaled RFM of trimmed customers",
    }
    if max_select_rows is not None and x.shape[0] > max_select_rows:
        quality["selection_rows"] = int(max_select_rows)
    extras = FitExtras("auto", quality, _pca_view(segmenter, x), fit_rows=sample)
    return segmenter, comparison, extras


def _scores(comparison: pd.DataFrame) -> dict[str, float]:
    best = best_row(comparison)
    return {
        "calinski_harabasz": float(best["calinski_harabasz"]),
        "davies_bouldin": float(best["davies_bouldin"]),
    }


def _pca_view(segmenter: RFMSegmenter, x: npt.NDArray[np.float64]) -> pd.DataFrame:
    """Every customer in the first two principal components of the model's feature space."""
    z = segmenter.scaled_features(x)
    view = PCA(n_components=2, random_state=segmenter.random_state).fit_transform(z)
    return _view_frame(np.asarray(view, dtype=np.float64), segmenter.predict_segments(x))


def _view_frame(view: npt.NDArray[np.float64], names: npt.NDArray[np.str_]) -> pd.DataFrame:
    return pd.DataFrame({"x": view[:, 0], "y": view[:, 1], "segment": names})
