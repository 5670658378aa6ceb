"""Names ordered by value: a segment worse on R, F and M alike never gets a better name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions, normalise_frame
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.data.synth import generate_transactions
from model_training.model.features import rfm_matrix
from model_training.model.naming import (
    PROTOTYPES,
    SEGMENT_NAMES,
    VALUE_ORDER,
    enforce_value_order,
    name_segments,
    order_violations,
    value_rank,
)
from model_training.model.segmenter import RFMSegmenter
from model_training.model.stability import stable_names

_N = 1000
POPULATION = np.column_stack(
    [np.linspace(0, 366, _N), np.linspace(1, 20, _N), np.linspace(0, 9990, _N)]
)

profile = st.tuples(
    st.floats(0, 373, allow_nan=False),
    st.floats(1, 40, allow_nan=False),
    st.floats(0, 12_000, allow_nan=False),
)
profiles = st.lists(profile, min_size=1, max_size=len(SEGMENT_NAMES))


def test_value_order_is_a_ranking_of_the_vocabulary() -> None:
    assert sorted(VALUE_ORDER) == sorted(SEGMENT_NAMES)
    assert [value_rank(name) for name in VALUE_ORDER] == list(range(len(VALUE_ORDER)))
    with pytest.raises(KeyError):
        value_rank("vip")


def test_value_order_follows_the_prototypes_total_score() -> None:
    totals = [sum(PROTOTYPES[name]) for name in VALUE_ORDER]
    assert totals == sorted(totals, reverse=True)
    # A prototype better on every axis than another always ranks better.
    for better in SEGMENT_NAMES:
        for worse in SEGMENT_NAMES:
            if all(b > w for b, w in zip(PROTOTYPES[better], PROTOTYPES[worse], strict=True)):
                assert value_rank(better) < value_rank(worse)


def test_valuable_lapsed_customers_rank_above_cheap_fading_ones() -> None:
    # Worse on every axis than the at_risk segment: the cheap one-off buyers are the ones
    # about to sleep (small discount), the valuable ones get the strong win-back offer.
    segments = [[219.0, 1.3, 195.0], [177.0, 4.6, 1538.0]]
    assert order_violations(segments, ["about_to_sleep", "at_risk"]) == []
    assert order_violations(segments, ["at_risk", "about_to_sleep"]) == [(0, 1)]


def test_a_violation_is_repaired_by_swapping_the_pair() -> None:
    segments = [[300.0, 2.0, 500.0], [10.0, 18.0, 9000.0], [100.0, 10.0, 5000.0]]
    named = enforce_value_order(segments, ["champions", "lost", "loyal"], POPULATION)
    assert named == ["lost", "champions", "loyal"]


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_named_profiles_respect_the_value_order(segments: list[tuple[float, ...]]) -> None:
    names = name_segments(segments, POPULATION)
    assert order_violations(segments, names) == []
    assert len(set(names)) == len(names)
    assert name_segments(segments, POPULATION) == names


@settings(max_examples=60, deadline=None)
@given(profiles, st.integers(0, 2**32 - 1))
def test_stable_names_respect_the_value_order(
    segments: list[tuple[float, ...]], shuffle_seed: int
) -> None:
    # Every segment matches an old one whose name is drawn at random: whatever is inherited,
    # the final names keep the value order, and what counts as inherited was kept.
    k = len(segments)
    old_names = list(SEGMENT_NAMES)
    np.random.default_rng(shuffle_seed).shuffle(old_names)
    old_names = old_names[:k]
    centroids = np.arange(k, dtype=np.float64)[:, None] * np.ones((1, 3))
    match = stable_names(centroids, centroids, old_names, segments, POPULATION)
    assert order_violations(segments, match.names) == []
    assert len(set(match.names)) == k
    for new, old in match.inherited.items():
        assert match.names[new] == old_names[old]


def _shop_rfm(customers: int, seed: int) -> np.ndarray:
    frame = normalise_frame(generate_transactions(customers, seed=seed).astype(str), "synthetic")
    clean = clean_transactions(frame)
    return rfm_matrix(compute_rfm(clean, default_reference_time(clean, frame)))


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    customers=st.integers(150, 400),
    k=st.integers(4, 8),
    method=st.sampled_from(["kmeans", "gmm"]),
)
def test_models_of_synthetic_shops_respect_the_value_order(
    seed: int, customers: int, k: int, method: str
) -> None:
    x = _shop_rfm(customers, seed)
    model = RFMSegmenter(
        method=method,  # type: ignore[arg-type]
        n_clusters=k,
        feature_transform="log",
        random_state=seed,
        n_init=1,
    ).fit(x)
    names = [model.segment_names_[label] for label in range(k)]
    assert order_violations(model.profiles_, names) == []


@pytest.mark.uci
def test_models_of_the_uci_file_respect_the_value_order(uci_path: Path) -> None:
    frame = load_transactions(uci_path)
    clean = clean_transactions(frame)
    x = rfm_matrix(compute_rfm(clean, default_reference_time(clean, frame)))
    for k in range(4, 9):
        model = RFMSegmenter(n_clusters=k, feature_transform="log", n_init=1).fit(x)
        names = [model.segment_names_[label] for label in range(k)]
        assert order_violations(model.profiles_, names) == [], (k, names)
