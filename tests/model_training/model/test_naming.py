"""Segment naming on hand-made profiles."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.model.naming import (
    ACTIONS,
    PROTOTYPES,
    SEGMENT_NAMES,
    action_for,
    name_segments,
    segment_scores,
)

# 1,000 customers spread evenly: recency 0..366, frequency 1..20, monetary 0..9,990.
_N = 1000
POPULATION = np.column_stack(
    [np.linspace(0, 366, _N), np.linspace(1, 20, _N), np.linspace(0, 9990, _N)]
)


def _profile(r: float, f: float, m: float) -> list[float]:
    """A profile at the given population scores (1 = best) on this uniform population."""
    return [366 * (1 - r), 1 + 19 * f, 9990 * m]


def test_scores_are_mid_ranks_with_recency_reversed() -> None:
    scores = segment_scores([_profile(0.9, 0.2, 0.5)], POPULATION)
    np.testing.assert_allclose(scores, [[0.9, 0.2, 0.5]], atol=0.002)


def test_profiles_at_prototypes_get_their_names() -> None:
    names = list(PROTOTYPES)
    profiles = [_profile(*PROTOTYPES[name]) for name in names]
    assert name_segments(profiles, POPULATION) == names


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [
        (
            [_profile(0.95, 0.95, 0.9), _profile(0.1, 0.1, 0.1)],
            ["champions", "lost"],
        ),
        (
            [_profile(0.9, 0.9, 0.9), _profile(0.9, 0.1, 0.1), _profile(0.15, 0.7, 0.7)],
            ["champions", "new", "at_risk"],
        ),
        (
            [
                _profile(0.85, 0.85, 0.9),
                _profile(0.2, 0.25, 0.2),
                _profile(0.1, 0.7, 0.65),
                _profile(0.7, 0.25, 0.3),
            ],
            ["champions", "hibernating", "at_risk", "promising"],
        ),
    ],
)
def test_hand_made_models(profiles: list[list[float]], expected: list[str]) -> None:
    assert name_segments(profiles, POPULATION) == expected


def test_names_are_unique_even_for_similar_segments() -> None:
    profiles = [_profile(0.9, 0.9, 0.9)] * 3
    names = name_segments(profiles, POPULATION)
    assert len(set(names)) == 3 and names[0] == "champions"


def test_deterministic_and_order_free() -> None:
    profiles = [_profile(0.9, 0.8, 0.8), _profile(0.3, 0.2, 0.2), _profile(0.6, 0.5, 0.5)]
    names = name_segments(profiles, POPULATION)
    assert names == name_segments(profiles, POPULATION)
    assert name_segments(profiles[::-1], POPULATION) == names[::-1]


def test_too_many_segments_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 11"):
        name_segments([_profile(0.5, 0.5, 0.5)] * 12, POPULATION)


def test_every_name_has_an_action_and_is_snake_case() -> None:
    assert set(ACTIONS) == set(SEGMENT_NAMES)
    for name in SEGMENT_NAMES:
        assert name == name.lower() and " " not in name
        assert action_for(name)
    with pytest.raises(KeyError):
        action_for("vip")
