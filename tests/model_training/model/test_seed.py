"""The reference recipe (--method seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.model.features import rfm_matrix
from model_training.model.seed import fit_seed


def test_recipe_on_synthetic_customers() -> None:
    rng = np.random.default_rng(3)
    n = 240
    x = np.column_stack(
        [rng.integers(0, 370, n), rng.geometric(0.3, n), rng.lognormal(6.0, 1.0, n)]
    ).astype(np.float64)
    result = fit_seed(x, k_values=range(2, 6), perplexity=20)
    assert result.n_fit == int(result.segmenter.fit_mask_.sum()) < n
    assert 2 <= result.k_pca <= 5 and 2 <= result.k_tsne <= 5
    assert sum(result.pca_explained_variance) <= 1.0 + 1e-9
    assert result.segmenter.method == "tsne_kmeans"
    assert result.segmenter.n_clusters == result.k_tsne
    assert result.classifier_accuracy is not None
    assert result.tsne_view.shape == (result.n_fit, 2)
    table = result.comparison
    assert set(table["method"]) == {"kmeans_pca", "kmeans_tsne"}
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and chosen.iloc[0]["method"] == "kmeans_tsne"
    labels = result.segmenter.predict(x)
    assert labels.shape == (n,)


@pytest.mark.uci
def test_reference_figures_on_uci(uci_path: Path) -> None:
    frame = load_transactions(uci_path)
    clean = clean_transactions(frame)
    rfm = compute_rfm(clean, default_reference_time(clean, frame))
    assert len(rfm) == 4334
    result = fit_seed(rfm_matrix(rfm))
    assert result.n_fit == 4044
    np.testing.assert_allclose(result.pca_explained_variance, (0.677, 0.240), atol=0.001)
    assert result.k_pca == 3
    assert result.k_tsne == 9
    assert result.classifier_accuracy is not None and result.classifier_accuracy >= 0.98
