"""The clustering algorithms behind the segmenter, and fast placement of new points.

:func:`make_clusterer` builds the scikit-learn clusterer of a method, shared by
:class:`~model_training.model.segmenter.RFMSegmenter` and model selection so both fit the
very same model; :func:`tsne_embedding` is the reference recipe's 2-D view, cached because the
recipe needs it twice; :func:`forest_predict` is a random forest's vote without scikit-learn's
per-call overhead, which the stream pays on every small batch, and :func:`gmm_assign` a
Gaussian mixture's most probable component computed in numpy.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.manifold import TSNE
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

__all__ = ["METHODS", "forest_predict", "gmm_assign", "make_clusterer", "tsne_embedding"]

METHODS: tuple[str, ...] = ("kmeans", "gmm", "agglomerative", "tsne_kmeans")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GMM_N_INIT = 3
_LOG_2PI = float(np.log(2.0 * np.pi))


def make_clusterer(method: str, n_clusters: int, random_state: int, n_init: int = 10) -> Any:
    """Build the scikit-learn clusterer used for ``method`` (not ``tsne_kmeans``'s t-SNE).

    Shared by :class:`RFMSegmenter` and model selection so both fit the very same model.
    """
    if method in ("kmeans", "tsne_kmeans"):
        return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    if method == "gmm":
        return GaussianMixture(
            n_components=n_clusters,
            covariance_type="full",
            n_init=_GMM_N_INIT,
            random_state=random_state,
        )
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters=n_clusters, linkage="ward")
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


_TSNE_CACHE: dict[tuple[str, float, int], FloatArray] = {}


def tsne_embedding(z: FloatArray, perplexity: float, random_state: int) -> FloatArray:
    """Embed ``z`` in 2-D with t-SNE (PCA initialisation), remembering the last two results.

    t-SNE is the slowest step of the reference recipe (about 9 s on 4,044 customers) and the
    seed method needs the same embedding twice (to choose k, then to fit), so identical inputs
    return the cached embedding. t-SNE is deterministic for a fixed ``random_state``.
    """
    data = np.ascontiguousarray(z, dtype=np.float64)
    digest = hashlib.sha256(data.tobytes() + str(data.shape).encode()).hexdigest()
    key = (digest, float(perplexity), int(random_state))
    cached = _TSNE_CACHE.get(key)
    if cached is not None:
        return cached.copy()
    # t-SNE requires perplexity < n_samples; small inputs (tests) get a smaller one.
    effective = min(float(perplexity), max((data.shape[0] - 1) / 3.0, 1.0))
    # PCA initialisation (scikit-learn's default) needs two input columns.
    init = "pca" if data.shape[1] >= 2 else "random"
    with threadpool_limits(limits=1):  # faster on a busy 2-core machine; see RFMSegmenter.fit
        embedding = TSNE(
            n_components=2, perplexity=effective, init=init, random_state=random_state
        ).fit_transform(data)
    result = np.asarray(embedding, dtype=np.float64)
    if len(_TSNE_CACHE) >= 2:
        _TSNE_CACHE.pop(next(iter(_TSNE_CACHE)))
    _TSNE_CACHE[key] = result
    return result.copy()


def forest_predict(forest: RandomForestClassifier, z: FloatArray) -> IntArray:
    """``forest.predict(z)`` without its per-call thread pool and input checks.

    ``RandomForestClassifier.predict`` dispatches its trees through joblib and validates the
    input for every tree, about 3 ms per call whatever the batch size; summing the trees' leaf
    probabilities directly gives the same answer (the forest's mean-probability vote) in a
    fraction of that.
    """
    if z.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    z32 = np.ascontiguousarray(z, dtype=np.float32)
    total = np.zeros((z.shape[0], len(forest.classes_)), dtype=np.float64)
    for tree in forest.estimators_:
        proba = tree.tree_.predict(z32)
        # Older scikit-learn returns (n, n_outputs, n_classes); newer drops the outputs axis.
        total += proba[:, 0, :] if proba.ndim == 3 else proba
    return np.asarray(forest.classes_[total.argmax(axis=1)], dtype=np.int64)


def gmm_assign(
    z: FloatArray, means: FloatArray, precisions_cholesky: FloatArray, weights: FloatArray
) -> IntArray:
    """The most probable component of a Gaussian mixture (full covariances) for each row.

    The same arithmetic as ``GaussianMixture._estimate_weighted_log_prob``, without the
    estimator's input checks.
    """
    chol = precisions_cholesky
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    shifted = np.einsum("nd,kde->nke", z, chol) - np.einsum("kd,kde->ke", means, chol)
    log_prob = -0.5 * (z.shape[1] * _LOG_2PI + (shifted**2).sum(axis=2)) + log_det
    return np.asarray((log_prob + np.log(weights)).argmax(axis=1), dtype=np.int64)
