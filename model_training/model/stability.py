"""Stable segment names across model versions. Pure: no I/O.

A retrained model clusters afresh: its labels come in any order and its naming rules
(:mod:`model_training.model.naming`) could give a slightly moved segment a neighbouring name.
Marketing tools key campaigns on names, so a segment that is *the same group of customers* as
before must keep its name (and, since actions follow names, its recommended action).

Rule
----
1. **Common space.** Both models' segments are described over the *same customers* (the
   current RFM state) in *one* feature space: the new model's transform (``log1p``, then its
   standardisation, :meth:`~model_training.segmenter.RFMSegmenter.scaled_features`). A
   segment's centroid is the mean of its members' transformed features, its members being
   the customers that model assigns to it. Units are standard deviations of the fitted
   customers' log-features, so one threshold fits every population.
2. **Optimal matching.** New and old segments are paired one-to-one by a minimum-cost
   assignment (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``) on the Euclidean
   distance between centroids. With different numbers of segments, the surplus on one side
   stays unpaired. A segment with no member among the customers has no centroid and pairs with
   nothing.
3. **Threshold.** A pair whose distance is at most :data:`MATCH_THRESHOLD` (0.5: half a
   standard deviation) is the same segment: the new segment inherits the old name. A farther
   pair is a different segment.
4. **New names.** Segments left without a name are named by the naming rules (scores against
   prototypes, Hungarian assignment) over the names not already inherited, so names stay
   distinct within the model.
5. **Value order.** The naming rules' order by value (rule 4 of
   :mod:`model_training.model.naming`) is then checked over the whole model: a segment worse
   on recency, frequency and monetary alike than another never keeps a better-ranked name,
   inherited or not. Where it would, the two swap names, and a segment that lost its old
   name this way no longer counts as inherited. Only the segments of such a pair change.

The matching depends only on the models and the customers, so it is deterministic; retraining
on the same state twice gives identical clusters (distance 0), hence identical names for every
customer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from model_training.model.naming import enforce_value_order, name_segments

__all__ = [
    "MATCH_THRESHOLD",
    "NameMatch",
    "match_centroids",
    "segment_centroids",
    "stable_names",
]

#: Largest centroid distance (standard deviations in the new model's space) at which a new
#: segment is the same as an old one and inherits its name.
MATCH_THRESHOLD = 0.5

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Stands in for "cannot pair" in the cost matrix: larger than any real distance, finite so the
# assignment always has a solution.
_NO_PAIR = 1e9


@dataclass(frozen=True)
class NameMatch:
    """How a new model's segments were named.

    Attributes
    ----------
    names
        ``names[label]``: the final name of each new segment.
    inherited
        New label to the old label whose name it kept (a name given up to keep the value
        order is not kept).
    distances
        New label to its distance to the old segment it was paired with (paired beyond the
        threshold included, for the record); unpaired labels are absent.
    """

    names: list[str]
    inherited: dict[int, int]
    distances: dict[int, float]


def segment_centroids(z: FloatArray, labels: IntArray, k: int) -> FloatArray:
    """Mean row of ``z`` per label; a label with no row gets NaN.

    Parameters
    ----------
    z
        Shape ``(n, d)``, customers in the common feature space.
    labels
        Shape ``(n,)``, each customer's segment label in ``0 .. k - 1``.
    k
        Number of segments.

    Returns
    -------
    numpy.ndarray
        Shape ``(k, d)``.

    Examples
    --------
    >>> z = np.array([[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]])
    >>> segment_centroids(z, np.array([0, 0, 1]), 3).tolist()
    [[1.0, 1.0], [5.0, 5.0], [nan, nan]]
    """
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.stack([np.bincount(labels, weights=z[:, j], minlength=k) for j in range(z.shape[1])])
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids: FloatArray = (sums / counts).T
    centroids[counts == 0] = np.nan
    return centroids


def match_centroids(
    new_centroids: npt.ArrayLike,
    old_centroids: npt.ArrayLike,
    threshold: float = MATCH_THRESHOLD,
) -> tuple[dict[int, int], dict[int, float]]:
    """Pair new segments with old ones by optimal assignment on centroid distance.

    Parameters
    ----------
    new_centroids, old_centroids
        Shapes ``(k_new, d)`` and ``(k_old, d)`` in one space; NaN rows (empty segments) pair
        with nothing.
    threshold
        Largest distance of a pair that counts as the same segment.

    Returns
    -------
    tuple
        ``(matches, distances)``: new label to old label for pairs within the threshold, and
        new label to distance for every pair the assignment made.

    Examples
    --------
    >>> old = [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]
    >>> new = [[0.0, 3.1], [0.1, 0.0], [9.0, 9.0]]
    >>> matches, _ = match_centroids(new, old)
    >>> matches
    {0: 2, 1: 0}
    """
    new = np.asarray(new_centroids, dtype=np.float64)
    old = np.asarray(old_centroids, dtype=np.float64)
    if new.ndim != 2 or old.ndim != 2 or new.shape[1] != old.shape[1]:
        raise ValueError("centroids must be 2-D arrays with the same number of columns")
    if new.shape[0] == 0 or old.shape[0] == 0:
        return {}, {}
    distance = np.sqrt(((new[:, None, :] - old[None, :, :]) ** 2).sum(axis=2))
    cost = np.where(np.isfinite(distance), distance, _NO_PAIR)
    rows, cols = linear_sum_assignment(cost)
    matches: dict[int, int] = {}
    distances: dict[int, float] = {}
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if cost[row, col] >= _NO_PAIR:
            continue
        distances[row] = float(distance[row, col])
        if distance[row, col] <= threshold:
            matches[row] = col
    return matches, distances


def stable_names(
    new_centroids: npt.ArrayLike,
    old_centroids: npt.ArrayLike,
    old_names: list[str],
    new_profiles: npt.ArrayLike,
    population: npt.ArrayLike,
    *,
    threshold: float = MATCH_THRESHOLD,
) -> NameMatch:
    """Name a new model's segments: inherit matched old names, name the rest by the rules.

    Parameters
    ----------
    new_centroids, old_centroids
        Segment centroids of the new and the previous model over the same customers in the
        new model's feature space (:func:`segment_centroids`).
    old_names
        ``old_names[label]``: the previous model's names.
    new_profiles
        Shape ``(k_new, 3)``: the new segments' mean raw RFM (the naming rules' input).
    population
        Shape ``(n, 3)``: the customers the new model was fitted on (the rules score against
        them).
    threshold
        See :data:`MATCH_THRESHOLD`.

    Returns
    -------
    NameMatch
        Final names, what was inherited, and the pair distances.

    Examples
    --------
    A permuted model keeps every name:

    >>> old = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    >>> profiles = [[5, 1, 60], [40, 8, 2000], [290, 1, 20]]
    >>> population = [[r, f, m] for r, f, m in zip(range(0, 300, 3), range(1, 101), range(100))]
    >>> stable_names(old[[2, 0, 1]], old, ["loyal", "lost", "new"], profiles, population).names
    ['new', 'loyal', 'lost']
    """
    old_c = np.asarray(old_centroids, dtype=np.float64)
    if len(old_names) != old_c.shape[0]:
        raise ValueError(f"{len(old_names)} old names for {old_c.shape[0]} old segments")
    matches, distances = match_centroids(new_centroids, old_c, threshold)
    profiles = np.asarray(new_profiles, dtype=np.float64)
    names = [""] * profiles.shape[0]
    for new_label, old_label in matches.items():
        names[new_label] = str(old_names[old_label])
    unnamed = [label for label, name in enumerate(names) if not name]
    if unnamed:
        fresh = name_segments(profiles[unnamed], population, taken=set(names) - {""})
        for label, name in zip(unnamed, fresh, strict=True):
            names[label] = name
    names = enforce_value_order(profiles, names, population)
    kept = {new: old for new, old in matches.items() if names[new] == old_names[old]}
    return NameMatch(names=names, inherited=kept, distances=distances)
