"""The segmentation model: a scikit-learn estimator over RFM features.

:class:`RFMSegmenter` trims the upper tail (see :mod:`model_training.model.features`), transforms,
clusters, and assigns any customer (outliers included) to a segment with a cheap
``predict``. The stream calls :meth:`RFMSegmenter.predict_segments` on small batches many
times a second, so prediction on a float64 numpy array skips scikit-learn's generic input
validation (which costs more than the arithmetic) and does only the checks that matter: shape,
finiteness, fitted state. Any other input (lists, frames, other dtypes) goes through
``validate_data``, so the estimator still behaves like any scikit-learn estimator.

Methods
-------
``kmeans``
    KMeans; prediction is a vectorised nearest centroid on the transformed features.
``gmm``
    Gaussian mixture (full covariances); prediction is the most probable component, computed
    in numpy from the fitted means, precision Cholesky factors and weights.
``agglomerative``
    Ward agglomerative clustering, which cannot place new points; a random forest trained on
    its labels does, and its held-out accuracy is ``classifier_accuracy_``.
``tsne_kmeans``
    The reference recipe: KMeans on a 2-D t-SNE view of the transformed features, and a random
    forest on the transformed features (t-SNE cannot embed new points either).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from model_training.model.clusterers import (
    METHODS,
    forest_predict,
    gmm_assign,
    make_clusterer,
    tsne_embedding,
)
from model_training.model.features import TRIM_COLUMNS, log_features, standardise, trim_mask
from model_training.model.naming import SEGMENT_NAMES, name_segments

__all__ = ["CLASSIFIER_METHODS", "TRANSFORMS", "RFMSegmenter"]

Method = Literal["kmeans", "gmm", "agglomerative", "tsne_kmeans"]
#: Methods whose new points are placed by a classifier trained on the cluster labels.
CLASSIFIER_METHODS: tuple[str, ...] = ("agglomerative", "tsne_kmeans")
TRANSFORMS: tuple[str, ...] = ("log", "standard")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Below this many fitted rows a held-out accuracy would be noise: report None instead.
_MIN_ROWS_FOR_ACCURACY = 20
_FOREST_TREES = 100


class RFMSegmenter(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Customer segmentation on RFM features, able to place any customer.

    Parameters
    ----------
    method : {"kmeans", "gmm", "agglomerative", "tsne_kmeans"}
        Clustering algorithm (see the module docstring).
    n_clusters : int
        Number of segments.
    feature_transform : {"log", "standard"}
        ``"log"``: ``log1p(max(x, 0))`` then standardisation (the default, for skewed RFM);
        ``"standard"``: standardisation only (the reference recipe).
    trim_quantile : float or None
        Rows above this quantile of frequency or monetary (columns 1 and 2) are left out of
        the fit; ``None`` fits on every row.
    n_init : int
        KMeans restarts.
    perplexity : float
        t-SNE perplexity (``tsne_kmeans`` only).
    random_state : int
        Seed of every random step, for reproducible models.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in ``fit`` (3 for RFM).
    mean_, scale_ : numpy.ndarray
        Standardisation learned on the fitting rows (after the log for ``feature_transform="log"``).
    fit_mask_ : numpy.ndarray
        Which rows of the training ``X`` the clustering was fitted on (not trimmed).
    fit_labels_ : numpy.ndarray
        Cluster labels of those rows as the clustering found them.
    cluster_centers_ : numpy.ndarray or None
        KMeans centroids in the transformed space (``kmeans`` only).
    means_, precisions_cholesky_, weights_ : numpy.ndarray or None
        Gaussian mixture parameters (``gmm`` only).
    classifier_ : RandomForestClassifier or None
        Places new points for ``agglomerative`` and ``tsne_kmeans``.
    classifier_accuracy_ : float or None
        The classifier's accuracy on a stratified 25 % hold-out of the fitting rows (it is then
        refitted on all of them); ``None`` for KMeans/GMM or for fewer than 20 rows.
    embedding_ : numpy.ndarray or None
        The t-SNE view of the fitting rows (``tsne_kmeans`` only).
    profiles_ : numpy.ndarray
        Mean raw feature values of each cluster's fitting rows, shape ``(k, n_features)``.
    segment_names_ : dict of int to str
        Label to segment name (:mod:`model_training.model.naming`; ``segment_<i>`` when the input
        is not the three RFM columns).
    labels_ : numpy.ndarray
        ``predict`` of the training rows, outliers included.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.column_stack([rng.integers(0, 300, 200), rng.integers(1, 20, 200),
    ...                      rng.gamma(2.0, 500.0, 200)]).astype(float)
    >>> model = RFMSegmenter(n_clusters=4).fit(x)
    >>> model.predict(x[:3]).shape, len(set(model.segment_names_.values()))
    ((3,), 4)
    """

    def __init__(
        self,
        method: Method = "kmeans",
        n_clusters: int = 5,
        *,
        feature_transform: Literal["log", "standard"] = "log",
        trim_quantile: float | None = 0.95,
        n_init: int = 10,
        perplexity: float = 50.0,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.feature_transform = feature_transform
        self.trim_quantile = trim_quantile
        self.n_init = n_init
        self.perplexity = perplexity
        self.random_state = random_state

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: object = None) -> RFMSegmenter:
        """Fit the segmentation on the rows of ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            RFM rows ``[recency_days, frequency, monetary]`` (other widths work, unnamed).
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        RFMSegmenter
            ``self``, fitted.
        """
        # One thread: on a few thousand rows BLAS/OpenMP thread pools cost more than they
        # save, and on a shared machine they oversubscribe the cores (5x slower measured).
        with threadpool_limits(limits=1):
            return self._fit(X)

    def _fit(self, X: Any) -> RFMSegmenter:
        self._check_params()
        x = validate_data(self, X, dtype=np.float64)
        k = int(self.n_clusters)
        if x.shape[0] < k:
            raise ValueError(f"n_samples={x.shape[0]} should be >= n_clusters={k}.")
        keep = trim_mask(x, self.trim_quantile, TRIM_COLUMNS)
        if int(keep.sum()) < k:
            keep = np.ones(x.shape[0], dtype=bool)
        x_fit = x[keep]

        z, self.mean_, self.scale_ = standardise(self._base_features(x_fit))

        self.cluster_centers_: FloatArray | None = None
        self.means_: FloatArray | None = None
        self.precisions_cholesky_: FloatArray | None = None
        self.weights_: FloatArray | None = None
        self.classifier_: RandomForestClassifier | None = None
        self.classifier_accuracy_: float | None = None
        self.embedding_: FloatArray | None = None

        labels = self._fit_clustering(z, k)
        if self.method in CLASSIFIER_METHODS:
            self._fit_classifier(z, labels)

        self.fit_mask_ = keep
        self.fit_labels_ = labels
        self.profiles_ = self._profiles(x_fit, labels, k)
        if x.shape[1] == 3 and k <= len(SEGMENT_NAMES):
            names = name_segments(self.profiles_, x_fit)
        else:
            names = [f"segment_{label}" for label in range(k)]
        self.segment_names_ = dict(enumerate(names))
        self.segment_name_array_ = np.array(names, dtype=str)
        self.labels_ = self.predict(x)
        return self

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.feature_transform not in TRANSFORMS:
            raise ValueError(
                f"feature_transform must be one of {TRANSFORMS}, got {self.feature_transform!r}"
            )
        if not isinstance(self.n_clusters, int | np.integer) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive int, got {self.n_clusters!r}")
        if self.trim_quantile is not None and not 0.0 < self.trim_quantile <= 1.0:
            raise ValueError(f"trim_quantile must be in (0, 1] or None, got {self.trim_quantile}")

    def _base_features(self, x: FloatArray) -> FloatArray:
        return log_features(x) if self.feature_transform == "log" else x

    def _fit_clustering(self, z: FloatArray, k: int) -> IntArray:
        if self.method == "kmeans":
            kmeans = make_clusterer("kmeans", k, self.random_state, self.n_init).fit(z)
            self.cluster_centers_ = np.asarray(kmeans.cluster_centers_, dtype=np.float64)
            return np.asarray(kmeans.labels_, dtype=np.int64)
        if self.method == "gmm":
            mixture = make_clusterer("gmm", k, self.random_state, self.n_init).fit(z)
            self.means_ = np.asarray(mixture.means_, dtype=np.float64)
            self.precisions_cholesky_ = np.asarray(mixture.precisions_cholesky_, np.float64)
            self.weights_ = np.asarray(mixture.weights_, dtype=np.float64)
            return self._gmm_assign(z)
        if self.method == "agglomerative":
            ward = make_clusterer("agglomerative", k, self.random_state, self.n_init)
            return np.asarray(ward.fit_predict(z), dtype=np.int64)
        if z.shape[0] < 4:
            raise ValueError(f"n_samples={z.shape[0]} is too few for t-SNE (needs >= 4).")
        self.embedding_ = tsne_embedding(z, self.perplexity, self.random_state)
        kmeans = make_clusterer("kmeans", k, self.random_state, self.n_init)
        return np.asarray(kmeans.fit_predict(self.embedding_), dtype=np.int64)

    def _fit_classifier(self, z: FloatArray, labels: IntArray) -> None:
        def forest() -> RandomForestClassifier:
            return RandomForestClassifier(
                n_estimators=_FOREST_TREES, random_state=self.random_state
            )

        if z.shape[0] >= _MIN_ROWS_FOR_ACCURACY:
            counts = np.bincount(labels)
            stratify = labels if counts[counts > 0].min() >= 2 else None
            z_train, z_test, y_train, y_test = train_test_split(
                z, labels, test_size=0.25, stratify=stratify, random_state=self.random_state
            )
            held_out = forest().fit(z_train, y_train)
            self.classifier_accuracy_ = float(held_out.score(z_test, y_test))
        self.classifier_ = forest().fit(z, labels)

    @staticmethod
    def _profiles(x_fit: FloatArray, labels: IntArray, k: int) -> FloatArray:
        profiles = np.empty((k, x_fit.shape[1]), dtype=np.float64)
        overall = x_fit.mean(axis=0)
        for label in range(k):
            members = x_fit[labels == label]
            # A mixture component can end up with no member; its profile is then the average.
            profiles[label] = members.mean(axis=0) if members.shape[0] else overall
        return profiles

    def set_segment_names(self, names: Sequence[str]) -> RFMSegmenter:
        """Replace the segment names of a fitted model (labels and clustering are unchanged).

        A retrained model keeps the names its segments had in the previous version
        (:mod:`model_training.model.stability`) rather than the ones the naming rules would give.

        Parameters
        ----------
        names : sequence of str
            ``names[label]`` for every label ``0 .. n_clusters - 1``; distinct and non-empty.

        Returns
        -------
        RFMSegmenter
            ``self``, renamed.
        """
        check_is_fitted(self, "segment_name_array_")
        listed = [str(name) for name in names]
        if len(listed) != int(self.n_clusters):
            raise ValueError(f"{len(listed)} names for {self.n_clusters} segments")
        if len(set(listed)) != len(listed) or not all(listed):
            raise ValueError(f"segment names must be distinct and non-empty, got {listed}")
        self.segment_names_ = dict(enumerate(listed))
        self.segment_name_array_ = np.array(listed, dtype=str)
        return self

    # -------------------------------------------------------------- predict

    def predict(self, X: Any) -> IntArray:
        """Return the segment label of each row of ``X`` (any customer, outliers included).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows in the training feature order. A float64 numpy array takes the fast path.

        Returns
        -------
        numpy.ndarray of int64
            Labels in ``0 .. n_clusters - 1``.
        """
        check_is_fitted(self, "segment_name_array_")
        z = self._scale(self._check_input(X))
        if self.cluster_centers_ is not None:
            centres = self.cluster_centers_
            distances = ((z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            return np.asarray(distances.argmin(axis=1), dtype=np.int64)
        if self.means_ is not None:
            return self._gmm_assign(z)
        assert self.classifier_ is not None
        return forest_predict(self.classifier_, z)

    def scaled_features(self, X: Any) -> FloatArray:
        """Return ``X`` in the space the model works in (transformed and standardised).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As for :meth:`predict`.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_samples, n_features)``.
        """
        check_is_fitted(self, "segment_name_array_")
        return self._scale(self._check_input(X))

    def _scale(self, x: FloatArray) -> FloatArray:
        scaled: FloatArray = (self._base_features(x) - self.mean_) / self.scale_
        return scaled

    def predict_segments(self, X: Any) -> npt.NDArray[np.str_]:
        """Return the segment name of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As for :meth:`predict`.

        Returns
        -------
        numpy.ndarray of str
            Names from :attr:`segment_names_`.
        """
        names: npt.NDArray[np.str_] = self.segment_name_array_[self.predict(X)]
        return names

    def _check_input(self, X: Any) -> FloatArray:
        fast = (
            isinstance(X, np.ndarray)
            and X.dtype == np.float64
            and X.ndim == 2
            and not hasattr(self, "feature_names_in_")
        )
        if not fast:
            checked: FloatArray = validate_data(self, X, dtype=np.float64, reset=False)
            return checked
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if not np.isfinite(X).all():
            raise ValueError("Input X contains NaN or infinity.")
        checked_fast: FloatArray = X
        return checked_fast

    def _gmm_assign(self, z: FloatArray) -> IntArray:
        assert self.means_ is not None
        assert self.precisions_cholesky_ is not None
        assert self.weights_ is not None
        return gmm_assign(z, self.means_, self.precisions_cholesky_, self.weights_)
