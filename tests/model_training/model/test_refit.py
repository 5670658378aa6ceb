"""Retraining from RFM state: determinism, stable names, migration matrix and quality gates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_training.data.rules import NON_PRODUCT_PATTERN
from model_training.model.artifact import LoadedModel, load_model, save_model
from model_training.model.features import rfm_matrix
from model_training.model.refit import QualityGates, RetrainResult, migration_matrix, retrain
from model_training.model.segmenter import RFMSegmenter

T_REF = datetime(2024, 1, 1)

# Five tight groups of customers, far apart in log-RFM. Group "b" is group "a" 120 days later,
# so moving recency of "a" customers by +120 days makes them "b" customers.
GROUPS: dict[str, tuple[tuple[float, float, float], int]] = {
    "a": ((3, 20, 5000), 300),
    "b": ((123, 20, 5000), 200),
    "c": ((5, 1, 100), 250),
    "d": ((300, 1, 50), 250),
    "e": ((30, 6, 1000), 250),
}
N = sum(size for _, size in GROUPS.values())


def _population(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for group, ((recency, frequency, monetary), size) in GROUPS.items():
        parts.append(
            pd.DataFrame(
                {
                    "recency_days": np.round(recency * np.exp(rng.normal(0, 0.08, size))),
                    "frequency": np.maximum(1, np.round(frequency * rng.lognormal(0, 0.08, size))),
                    "monetary": np.round(monetary * rng.lognormal(0, 0.1, size), 2),
                    "group": group,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame.index = pd.Index([str(10_000 + i) for i in range(len(frame))], name="customer_id")
    return frame


def _served(result: RetrainResult) -> LoadedModel:
    """The model as a worker would hold it after publishing ``result``."""
    names = [str(name) for name in result.segmenter.segment_name_array_]
    return LoadedModel(result.version, result.segmenter, result.card, names)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return _population()


@pytest.fixture(scope="module")
def first(population: pd.DataFrame) -> RetrainResult:
    return retrain(population, T_REF, None)


def test_first_model_without_previous(first: RetrainResult, population: pd.DataFrame) -> None:
    assert first.accepted, first.reasons
    assert first.reasons == []
    assert first.changed_share == 0.0
    assert first.migration.empty
    card = first.card
    assert card["trained_from"] == "stream"
    assert card["non_product_pattern"] == NON_PRODUCT_PATTERN
    assert card["migration"] is None
    assert card["previous_version"] is None
    assert card["gates"]["passed"] is True
    assert card["gates"]["changed_share"] is None
    assert card["n_segments"] == 5 == len(card["segments"])
    assert card["n_customers"] == N
    assert card["version"].startswith("2024-01-01T00:00:00Z-")
    # Each tight group is one segment.
    names = pd.Series(first.segmenter.predict_segments(rfm_matrix(population)))
    assert names.groupby(population["group"].to_numpy()).nunique().eq(1).all()


def test_same_state_twice_gives_the_same_model_and_names(
    first: RetrainResult, population: pd.DataFrame
) -> None:
    x = rfm_matrix(population)
    twin = retrain(population, T_REF, None)
    assert twin.version == first.version
    assert (
        twin.segmenter.predict_segments(x).tolist() == first.segmenter.predict_segments(x).tolist()
    )

    again = retrain(population, T_REF, _served(first))
    assert again.accepted, again.reasons
    assert again.changed_share == 0.0
    assert again.card["migration"]["changed"] == 0
    assert (
        again.segmenter.predict_segments(x).tolist() == first.segmenter.predict_segments(x).tolist()
    )
    assert again.version != first.version  # another predecessor: another identity
    assert sorted(again.card["migration"]["inherited_names"]) == sorted(
        first.segmenter.segment_names_.values()
    )


def test_row_order_does_not_matter(first: RetrainResult, population: pd.DataFrame) -> None:
    shuffled = population.sample(frac=1.0, random_state=3)
    result = retrain(shuffled, T_REF, None)
    assert result.version == first.version
    x = rfm_matrix(population)
    assert (
        result.segmenter.predict_segments(x).tolist()
        == first.segmenter.predict_segments(x).tolist()
    )


def test_shifted_population_moves_only_the_shifted_customers(
    first: RetrainResult, population: pd.DataFrame
) -> None:
    rng = np.random.default_rng(1)
    moved = rng.choice(np.flatnonzero(population["group"] == "a"), N // 10, replace=False)
    shifted = population.copy()
    shifted.iloc[moved, shifted.columns.get_loc("recency_days")] += 120
    previous = _served(first)

    result = retrain(shifted, T_REF, previous)

    before = previous.predict_segments(rfm_matrix(population))
    after = result.segmenter.predict_segments(rfm_matrix(shifted))
    assert set(np.flatnonzero(before != after)) == set(moved)
    # Moved customers took the name of the group they joined.
    b_name = before[np.flatnonzero(population["group"] == "b")[0]]
    assert set(after[moved]) == {b_name}

    # The migration compares both models on the same (shifted) state.
    direct = pd.crosstab(
        pd.Series(previous.predict_segments(rfm_matrix(shifted)), name="old"),
        pd.Series(after, name="new"),
    )
    matrix = result.migration
    assert int(matrix.to_numpy().sum()) == N
    for old in direct.index:
        for new in direct.columns:
            assert matrix.loc[old, new] == direct.loc[old, new]
    card_matrix = result.card["migration"]["matrix"]
    assert sum(sum(row.values()) for row in card_matrix.values()) == N
    assert result.card["migration"]["from_version"] == first.version


def test_gates_reject_with_reasons(first: RetrainResult, population: pd.DataFrame) -> None:
    strict = QualityGates(min_silhouette=0.99, min_segment_share=0.3, max_changed_share=0.0)
    # A previous model that splits the customers quite differently.
    other = RFMSegmenter(n_clusters=3).fit(rfm_matrix(_population(seed=9).iloc[::7]))
    previous = LoadedModel(
        "2023-01-01T00:00:00Z-0000", other, {}, [str(n) for n in other.segment_name_array_]
    )
    result = retrain(population, T_REF, previous, strict)
    assert not result.accepted
    assert len(result.reasons) == 3
    silhouette, tiny, changed = result.reasons
    assert silhouette.startswith("silhouette ") and "below 0.990" in silhouette
    assert "of customers, below 30.00%" in tiny
    assert "would change segment" in changed and "above 0.00%" in changed
    assert result.changed_share > 0
    gates = result.card["gates"]
    assert gates["passed"] is False and gates["reasons"] == result.reasons
    assert gates["min_segment_share"] == 0.3
    assert gates["changed_share"] == result.changed_share


def test_changed_gate_is_skipped_without_previous(population: pd.DataFrame) -> None:
    result = retrain(population, T_REF, None, QualityGates(max_changed_share=0.0))
    assert result.accepted


def test_large_population_is_fitted_on_a_sample_but_scores_everyone(
    population: pd.DataFrame,
) -> None:
    result = retrain(population, T_REF, None, max_fit_rows=600, max_select_rows=300)
    sampling = result.card["sampling"]
    assert sampling["n_fit_rows"] == 600 and sampling["n_customers"] == N
    assert sum(segment["size"] for segment in result.card["segments"]) == N
    twin = retrain(population, T_REF, None, max_fit_rows=600, max_select_rows=300)
    x = rfm_matrix(population)
    assert (
        twin.segmenter.predict_segments(x).tolist() == result.segmenter.predict_segments(x).tolist()
    )


def test_card_saves_and_loads_like_rfm_train(first: RetrainResult, tmp_path: Path) -> None:
    save_model(tmp_path, first.segmenter, first.card)
    loaded = load_model(tmp_path)
    assert loaded.version == first.version
    assert loaded.card["trained_from"] == "stream"


def test_migration_matrix_counts() -> None:
    matrix = migration_matrix(
        np.array([0, 1, 1, 2]), ["x", "y", "z"], np.array([1, 1, 0, 1]), ["y", "x"]
    )
    assert matrix.to_dict() == {"y": {"x": 0, "y": 1, "z": 0}, "x": {"x": 1, "y": 1, "z": 1}}
