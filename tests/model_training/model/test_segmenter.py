"""RFMSegmenter: scikit-learn estimator contract, fast predict, naming, classifier path."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from model_training.model.clusterers import make_clusterer
from model_training.model.naming import SEGMENT_NAMES
from model_training.model.segmenter import RFMSegmenter


def _rfm(n: int = 400, seed: int = 0) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    recency = rng.integers(0, 370, n)
    frequency = rng.geometric(0.35, n)
    monetary = rng.lognormal(6.0, 1.0, n) * frequency
    return np.column_stack([recency, frequency, monetary]).astype(np.float64)


@parametrize_with_checks(
    [
        RFMSegmenter(),
        RFMSegmenter(method="gmm"),
        RFMSegmenter(method="agglomerative"),
        RFMSegmenter(method="tsne_kmeans", feature_transform="standard"),
    ]
)
def test_sklearn_compatible(estimator: RFMSegmenter, check: object) -> None:
    check(estimator)  # type: ignore[operator]


@pytest.mark.parametrize("method", ["kmeans", "gmm", "agglomerative"])
def test_predict_labels_every_customer_with_unique_names(method: str) -> None:
    x = _rfm()
    model = RFMSegmenter(method=method, n_clusters=5).fit(x)  # type: ignore[arg-type]
    assert not model.fit_mask_.all(), "the top 5 % should be trimmed from the fit"
    labels = model.predict(x)
    assert labels.dtype == np.int64
    assert set(labels.tolist()) <= set(range(5))
    np.testing.assert_array_equal(labels, model.labels_)
    names = list(model.segment_names_.values())
    assert len(set(names)) == 5 and set(names) <= set(SEGMENT_NAMES)
    outliers = np.array([[0.0, 500.0, 1e6], [400.0, 1.0, -3.0]])
    segments = model.predict_segments(outliers)
    assert segments.shape == (2,) and set(segments.tolist()) <= set(names)


def test_kmeans_fast_predict_matches_sklearn() -> None:
    x = _rfm()
    model = RFMSegmenter(n_clusters=4).fit(x)
    z = model.scaled_features(x)
    kmeans = make_clusterer("kmeans", 4, 0).fit(z[model.fit_mask_])
    np.testing.assert_array_equal(model.predict(x), kmeans.predict(z))


def test_gmm_fast_predict_matches_sklearn() -> None:
    x = _rfm()
    model = RFMSegmenter(method="gmm", n_clusters=4).fit(x)
    z = model.scaled_features(x)
    mixture = make_clusterer("gmm", 4, 0).fit(z[model.fit_mask_])
    assert isinstance(mixture, GaussianMixture)
    np.testing.assert_array_equal(model.predict(x), mixture.predict(z))


def test_fast_path_agrees_with_validated_path() -> None:
    x = _rfm()
    model = RFMSegmenter(n_clusters=4).fit(x)
    np.testing.assert_array_equal(model.predict(x), model.predict(x.tolist()))
    np.testing.assert_array_equal(model.predict(x), model.predict(x.astype(np.float32)))


def test_classifier_accuracy_only_for_classifier_methods() -> None:
    x = _rfm()
    assert RFMSegmenter(n_clusters=4).fit(x).classifier_accuracy_ is None
    ward = RFMSegmenter(method="agglomerative", n_clusters=4).fit(x)
    assert ward.classifier_accuracy_ is not None and 0.8 <= ward.classifier_accuracy_ <= 1.0
    forest = ward.classifier_
    assert forest is not None
    np.testing.assert_array_equal(ward.predict(x), forest.predict(ward.scaled_features(x)))


def test_bad_input_is_refused() -> None:
    with pytest.raises(NotFittedError):
        RFMSegmenter().predict(np.zeros((1, 3)))
    model = RFMSegmenter(n_clusters=3).fit(_rfm(100))
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.array([[1.0, np.nan, 3.0]]))
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_clusters=3"):
        RFMSegmenter(n_clusters=3).fit(np.ones((2, 3)))
    with pytest.raises(ValueError, match="method must be"):
        RFMSegmenter(method="dbscan").fit(_rfm(50))  # type: ignore[arg-type]


def test_fit_is_deterministic() -> None:
    x = _rfm()
    first = RFMSegmenter(method="gmm", n_clusters=4).fit(x)
    second = RFMSegmenter(method="gmm", n_clusters=4).fit(x)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    assert first.segment_names_ == second.segment_names_
