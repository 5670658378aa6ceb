"""Name matching between model versions, on hand-made centroids."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.model.naming import PROTOTYPES, SEGMENT_NAMES, name_segments, order_violations
from model_training.model.stability import (
    MATCH_THRESHOLD,
    match_centroids,
    segment_centroids,
    stable_names,
)

# Five well-separated old segments in a 3-D standardised space.
OLD = np.array(
    [
        [0.0, 0.0, 0.0],
        [3.0, 0.0, 0.0],
        [0.0, 3.0, 0.0],
        [0.0, 0.0, 3.0],
        [3.0, 3.0, 3.0],
    ]
)
OLD_NAMES = ["champions", "lost", "new", "at_risk", "loyal"]
# A uniform population: recency 0..366, frequency 1..20, monetary 0..9,990.
POPULATION = np.column_stack(
    [np.linspace(0, 366, 1000), np.linspace(1, 20, 1000), np.linspace(0, 9990, 1000)]
)


def _at(name: str) -> list[float]:
    """The raw profile at a name's prototype scores on the uniform population."""
    r, f, m = PROTOTYPES[name]
    return [366 * (1 - r), 1 + 19 * f, 9990 * m]


def _profiles(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return np.column_stack([rng.uniform(0, 366, k), rng.uniform(1, 20, k), rng.uniform(0, 9990, k)])


@pytest.mark.parametrize("seed", range(5))
def test_permuted_clusters_keep_their_names(seed: int) -> None:
    order = np.random.default_rng(seed).permutation(len(OLD))
    jitter = np.random.default_rng(seed + 100).normal(0, 0.05, OLD.shape)
    new = OLD[order] + jitter
    profiles = [_at(OLD_NAMES[i]) for i in order]
    match = stable_names(new, OLD, OLD_NAMES, profiles, POPULATION)
    assert match.names == [OLD_NAMES[i] for i in order]
    assert match.inherited == {position: int(i) for position, i in enumerate(order)}
    assert all(distance < MATCH_THRESHOLD for distance in match.distances.values())


def test_a_segment_beyond_the_threshold_gets_a_fresh_unused_name() -> None:
    new = OLD.copy()
    new[2] = [10.0, 10.0, 10.0]  # nothing old is near it
    profiles = [_at(name) for name in OLD_NAMES]
    profiles[2] = [180.0, 5.0, 2500.0]  # average on every axis
    match = stable_names(new, OLD, OLD_NAMES, profiles, POPULATION)
    assert 2 not in match.inherited
    assert match.distances[2] > MATCH_THRESHOLD  # paired by the assignment, but too far
    assert [match.names[i] for i in (0, 1, 3, 4)] == [OLD_NAMES[i] for i in (0, 1, 3, 4)]
    assert match.names[2] in SEGMENT_NAMES
    assert match.names[2] not in {OLD_NAMES[i] for i in (0, 1, 3, 4)}
    assert len(set(match.names)) == 5


def test_threshold_is_inclusive_and_configurable() -> None:
    new = OLD + np.array([0.3, 0.0, 0.0])
    assert len(match_centroids(new, OLD, threshold=0.3)[0]) == 5
    assert match_centroids(new, OLD, threshold=0.29)[0] == {}


def test_more_new_segments_than_old_names_the_surplus_by_the_rules() -> None:
    new = np.vstack([OLD, [[-3.0, -3.0, -3.0]], [[6.0, 0.0, 0.0]]])
    profiles = np.array([*(_at(name) for name in OLD_NAMES), _at("hibernating"), _at("promising")])
    match = stable_names(new, OLD, OLD_NAMES, profiles, POPULATION)
    assert match.names[:5] == OLD_NAMES
    taken = set(OLD_NAMES)
    assert match.names[5:] == name_segments(profiles[5:], POPULATION, taken=taken)
    assert not taken & set(match.names[5:])


def test_an_inherited_name_that_breaks_the_value_order_is_given_up() -> None:
    # Segment 1 kept "champions" but is now worse on every axis than segment 0 ("loyal").
    names = ["loyal", "champions", "lost"]
    profiles = [[20.0, 15.0, 8000.0], [60.0, 12.0, 6000.0], [350.0, 1.0, 50.0]]
    match = stable_names(OLD[:3], OLD[:3], names, profiles, POPULATION)
    assert match.names == ["champions", "loyal", "lost"]
    assert order_violations(profiles, match.names) == []
    assert match.inherited == {2: 2}


def test_fewer_new_segments_than_old_take_the_nearest() -> None:
    new = OLD[[4, 1]] + 0.1
    match = stable_names(new, OLD, OLD_NAMES, _profiles(2), POPULATION)
    assert match.names == ["loyal", "lost"]


def test_empty_segments_pair_with_nothing() -> None:
    z = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [3.0, 0.0, 0.0]])
    centroids = segment_centroids(z, np.array([0, 0, 2]), 3)
    assert np.isnan(centroids[1]).all()
    np.testing.assert_allclose(centroids[[0, 2]], [[0.1, 0, 0], [3.0, 0, 0]])
    matches, distances = match_centroids(centroids, OLD[:3])
    assert matches == {0: 0, 2: 1}
    assert 1 not in distances


def test_names_taken_are_left_out_of_the_vocabulary() -> None:
    profiles = [[5.0, 19.0, 9500.0]]  # the best on every axis: champions
    assert name_segments(profiles, POPULATION) == ["champions"]
    assert name_segments(profiles, POPULATION, taken={"champions"}) != ["champions"]
    with pytest.raises(ValueError, match="at most 11"):
        name_segments(_profiles(3), POPULATION, taken=SEGMENT_NAMES[:9])


def test_old_names_must_match_old_centroids() -> None:
    with pytest.raises(ValueError, match="old names"):
        stable_names(OLD, OLD, OLD_NAMES[:2], _profiles(5), POPULATION)
