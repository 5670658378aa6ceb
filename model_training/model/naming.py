"""Human names for segments, derived from their RFM profile. Pure: no I/O.

Rules
-----
1. **Scores.** For each segment, its mean recency, frequency and monetary are placed in the
   population's distribution (the customers the model was fitted on) as mid-ranks in [0, 1]:
   the share of customers strictly below plus half the share equal. Recency is reversed so
   that 1 always means *better* (more recent, more frequent, more spent).
2. **Prototypes.** Each name of the fixed vocabulary :data:`SEGMENT_NAMES` has a prototype
   score triple ``(R, F, M)`` (:data:`PROTOTYPES`), the classic RFM grid:

   ====================  ====  ====  ====  ============================================
   name                   R     F     M    meaning
   ====================  ====  ====  ====  ============================================
   champions             0.90  0.90  0.90  bought recently, often, and spent the most
   loyal                 0.65  0.80  0.80  buy often and spend well, less recently
   potential_loyalist    0.80  0.55  0.55  recent, average frequency and spend
   new                   0.90  0.15  0.15  very recent first purchases, little history
   promising             0.75  0.30  0.30  recent, below-average frequency and spend
   needs_attention       0.50  0.50  0.50  average on every axis
   about_to_sleep        0.35  0.30  0.30  below average and fading
   at_risk               0.20  0.65  0.65  used to buy often and spend well, not lately
   cant_lose_them        0.08  0.90  0.90  were among the best, gone for a long time
   hibernating           0.25  0.20  0.20  long ago, little and seldom
   lost                  0.05  0.05  0.05  longest ago, least frequent, least spent
   ====================  ====  ====  ====  ============================================

3. **Assignment.** Segments get distinct names by a minimum-cost one-to-one assignment
   (Hungarian algorithm) on the squared Euclidean distance between score and prototype.
   Distinct names are guaranteed for up to 11 segments; a model with more segments is refused.
4. **Order by value.** The names are ranked by the value of the customers they describe,
   :data:`VALUE_ORDER`, best first: the classic RFM total score ``R + F + M`` of each
   prototype (ties broken by ``F + M``, the value at stake)::

       champions 2.70 > loyal 2.25 > potential_loyalist 1.90 > cant_lose_them 1.88
       > at_risk 1.50 > needs_attention 1.50 > promising 1.35 > new 1.20
       > about_to_sleep 0.95 > hibernating 0.65 > lost 0.15

   A segment *dominated* by another (strictly worse on recency, frequency and monetary
   alike, in the raw profile means) never gets a name ranked better than the other's. When
   the assignment breaks this, the two segments swap names; of all pairs that break it, the
   swap that costs least is made first, until no pair does (each swap removes at least one
   inversion, so this ends). The order is about value, not urgency: ``at_risk`` and
   ``cant_lose_them`` ask for the strongest win-back actions *because* their customers are
   worth a lot, so they rank above ``needs_attention``, ``new`` and ``about_to_sleep``; a
   segment of cheap one-off buyers that is worse on every axis than an ``at_risk`` one is
   ``about_to_sleep`` (a small discount), not the other way round. Any order by a positive
   weighting of the prototype scores respects dominance between the prototypes themselves,
   so a profile at its prototype keeps its name.

The assignment depends only on the profiles, so it is deterministic and does not depend on
the order of the segments; a retrained model with similar segments gets the same names (what
the stream needs to keep names stable, :mod:`model_training.model.stability`, which applies
rule 4 to the whole renamed model as well).

Each name has a human label, :data:`LABELS` (what the report, the CLI, the API and the page
show), and a recommended marketing action, :data:`ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

__all__ = [
    "ACTIONS",
    "LABELS",
    "PROTOTYPES",
    "SEGMENT_NAMES",
    "VALUE_ORDER",
    "action_for",
    "enforce_value_order",
    "label_for",
    "name_segments",
    "order_violations",
    "segment_scores",
    "value_rank",
]

PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "champions": (0.90, 0.90, 0.90),
    "loyal": (0.65, 0.80, 0.80),
    "potential_loyalist": (0.80, 0.55, 0.55),
    "new": (0.90, 0.15, 0.15),
    "promising": (0.75, 0.30, 0.30),
    "needs_attention": (0.50, 0.50, 0.50),
    "about_to_sleep": (0.35, 0.30, 0.30),
    "at_risk": (0.20, 0.65, 0.65),
    "cant_lose_them": (0.08, 0.90, 0.90),
    "hibernating": (0.25, 0.20, 0.20),
    "lost": (0.05, 0.05, 0.05),
}

#: The fixed vocabulary, in order of preference when costs tie.
SEGMENT_NAMES: tuple[str, ...] = tuple(PROTOTYPES)

#: The names from the most to the least valuable customers (rule 4 of the module docstring).
VALUE_ORDER: tuple[str, ...] = (
    "champions",
    "loyal",
    "potential_loyalist",
    "cant_lose_them",
    "at_risk",
    "needs_attention",
    "promising",
    "new",
    "about_to_sleep",
    "hibernating",
    "lost",
)
_RANK = {name: rank for rank, name in enumerate(VALUE_ORDER)}

LABELS: dict[str, str] = {
    "champions": "Champions",
    "loyal": "Loyal",
    "potential_loyalist": "Potential loyalists",
    "new": "New customers",
    "promising": "Promising",
    "needs_attention": "Need attention",
    "about_to_sleep": "About to sleep",
    "at_risk": "At risk",
    "cant_lose_them": "Can't lose them",
    "hibernating": "Hibernating",
    "lost": "Lost",
}

ACTIONS: dict[str, str] = {
    "champions": "Reward them: early access, loyalty perks, ask for reviews and referrals.",
    "loyal": "Upsell higher-value ranges; invite to the loyalty programme.",
    "potential_loyalist": "Offer membership or a bundle to make buying a habit.",
    "new": "Onboard: welcome series, best-sellers, a second-order incentive.",
    "promising": "Build the relationship: recommendations and a limited-time offer.",
    "needs_attention": "Re-engage with personalised picks and a time-limited offer.",
    "about_to_sleep": "Reactivate with popular products and a small discount.",
    "at_risk": "Win back now: personal outreach, strong offer, ask what went wrong.",
    "cant_lose_them": "Top-priority win-back: account manager call, best offer, new range.",
    "hibernating": "Low-cost reminder campaigns; recommend seasonal items.",
    "lost": "Last-chance campaign only; otherwise stop spending on them.",
}


def segment_scores(
    profiles: npt.ArrayLike,
    population: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Place segment profiles in the population as mid-rank scores (1 = better).

    Parameters
    ----------
    profiles
        Shape ``(k, 3)``: each segment's mean ``recency_days, frequency, monetary``.
    population
        Shape ``(n, 3)``: the customers' ``recency_days, frequency, monetary``.

    Returns
    -------
    numpy.ndarray
        Shape ``(k, 3)``, values in [0, 1]; recency reversed so 1 means most recent.

    Examples
    --------
    >>> population = [[1, 1, 10], [10, 2, 20], [100, 3, 30], [200, 4, 40]]
    >>> segment_scores([[10, 2, 20]], population).tolist()
    [[0.625, 0.375, 0.375]]
    """
    prof = np.asarray(profiles, dtype=np.float64)
    pop = np.asarray(population, dtype=np.float64)
    if prof.ndim != 2 or pop.ndim != 2 or prof.shape[1] != 3 or pop.shape[1] != 3:
        raise ValueError("profiles and population need 3 columns: recency, frequency, monetary")
    if pop.shape[0] == 0:
        raise ValueError("the population is empty")
    scores = np.empty_like(prof)
    for column in range(3):
        ordered = np.sort(pop[:, column])
        below = np.searchsorted(ordered, prof[:, column], side="left")
        at_or_below = np.searchsorted(ordered, prof[:, column], side="right")
        scores[:, column] = (below + at_or_below) / (2.0 * ordered.size)
    scores[:, 0] = 1.0 - scores[:, 0]
    return scores


def name_segments(
    profiles: npt.ArrayLike,
    population: npt.ArrayLike,
    *,
    taken: Collection[str] = (),
) -> list[str]:
    """Name each segment from its profile; names are distinct within the model.

    Parameters
    ----------
    profiles
        Shape ``(k, 3)``, row ``i`` the mean RFM of segment ``i``; ``1 <= k <= 11``.
    population
        Shape ``(n, 3)``, the customers' RFM the scores are relative to.
    taken
        Names already used by other segments of the same model (segments that kept their
        name across a retrain, :mod:`model_training.model.stability`): left out of the vocabulary.

    Returns
    -------
    list of str
        ``names[i]`` is the name of segment ``i``, from :data:`SEGMENT_NAMES`.

    Examples
    --------
    >>> population = [[r, f, m] for r, f, m in zip(range(0, 300, 3), range(1, 101), range(100))]
    >>> name_segments([[5, 95, 95], [290, 3, 3]], population)
    ['champions', 'lost']
    """
    scores = segment_scores(profiles, population)
    free = [name for name in SEGMENT_NAMES if name not in set(taken)]
    if scores.shape[0] > len(free):
        raise ValueError(
            f"{scores.shape[0]} segments but only {len(free)} free names of "
            f"{len(SEGMENT_NAMES)}; use at most 11 segments in all"
        )
    cost = _cost(scores, free)
    rows, cols = linear_sum_assignment(cost)
    names = [""] * scores.shape[0]
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        names[row] = free[col]
    return enforce_value_order(profiles, names, population)


def value_rank(name: str) -> int:
    """Rank of a name in :data:`VALUE_ORDER` (0 = the most valuable customers).

    >>> value_rank("champions"), value_rank("at_risk"), value_rank("about_to_sleep")
    (0, 4, 8)
    """
    try:
        return _RANK[name]
    except KeyError:
        raise KeyError(f"unknown segment name {name!r}; expected one of {SEGMENT_NAMES}") from None


def order_violations(profiles: npt.ArrayLike, names: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs of segments whose names break the value order.

    Parameters
    ----------
    profiles
        Shape ``(k, 3)``: each segment's mean ``recency_days, frequency, monetary``.
    names
        ``names[i]``: the name of segment ``i``; names outside the vocabulary are ignored.

    Returns
    -------
    list of tuple
        ``(worse, better)`` for every segment ``worse`` strictly worse than ``better`` on
        recency, frequency and monetary alike whose name ranks better in :data:`VALUE_ORDER`.

    Examples
    --------
    >>> order_violations([[200, 1, 100], [20, 6, 900]], ["at_risk", "about_to_sleep"])
    [(0, 1)]
    >>> order_violations([[200, 1, 100], [20, 6, 900]], ["about_to_sleep", "at_risk"])
    []
    """
    prof = np.asarray(profiles, dtype=np.float64)
    if prof.ndim != 2 or prof.shape[1] != 3 or prof.shape[0] != len(names):
        raise ValueError("profiles need shape (len(names), 3): recency, frequency, monetary")
    worse = _dominated(prof)
    return [
        (a, b)
        for a, b in zip(*(axis.tolist() for axis in np.nonzero(worse)), strict=True)
        if names[a] in _RANK and names[b] in _RANK and _RANK[names[a]] < _RANK[names[b]]
    ]


def enforce_value_order(
    profiles: npt.ArrayLike, names: Sequence[str], population: npt.ArrayLike
) -> list[str]:
    """Swap names between segments until no segment is named better than one it is worse than.

    Parameters
    ----------
    profiles
        Shape ``(k, 3)``: each segment's mean ``recency_days, frequency, monetary``.
    names
        ``names[i]``: the current name of segment ``i`` (distinct, from :data:`SEGMENT_NAMES`).
    population
        Shape ``(n, 3)``: the customers the scores are relative to; of the swaps that repair
        the order, the one that moves the scores least away from the prototypes goes first.

    Returns
    -------
    list of str
        The names, unchanged where the value order already holds.

    Examples
    --------
    >>> population = [[r, f, m] for r, f, m in zip(range(0, 300, 3), range(1, 101), range(100))]
    >>> enforce_value_order([[200, 2, 5], [150, 60, 60]], ["at_risk", "about_to_sleep"], population)
    ['about_to_sleep', 'at_risk']
    """
    result = [str(name) for name in names]
    violations = order_violations(profiles, result)
    if not violations:
        return result
    scores = segment_scores(profiles, population)
    cost = _cost(scores, SEGMENT_NAMES)
    column = {name: position for position, name in enumerate(SEGMENT_NAMES)}
    while violations:

        def extra(pair: tuple[int, int]) -> tuple[float, int, int]:
            a, b = pair
            now = cost[a, column[result[a]]] + cost[b, column[result[b]]]
            swapped = cost[a, column[result[b]]] + cost[b, column[result[a]]]
            # Names are distinct, so their ranks break ties independently of segment order.
            return (float(swapped - now), _RANK[result[a]], _RANK[result[b]])

        a, b = min(violations, key=extra)
        result[a], result[b] = result[b], result[a]
        violations = order_violations(profiles, result)
    return result


def _cost(scores: npt.NDArray[np.float64], names: Sequence[str]) -> npt.NDArray[np.float64]:
    prototypes = np.array([PROTOTYPES[name] for name in names], dtype=np.float64)
    cost: npt.NDArray[np.float64] = ((scores[:, None, :] - prototypes[None, :, :]) ** 2).sum(axis=2)
    return cost


def _dominated(profiles: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """``out[a, b]``: segment ``a`` is strictly worse than ``b`` on R, F and M alike."""
    recency, frequency, monetary = profiles[:, 0], profiles[:, 1], profiles[:, 2]
    out: npt.NDArray[np.bool_] = (
        (recency[:, None] > recency[None, :])
        & (frequency[:, None] < frequency[None, :])
        & (monetary[:, None] < monetary[None, :])
    )
    return out


def action_for(name: str) -> str:
    """Return the recommended marketing action for a segment name.

    >>> action_for("lost")
    'Last-chance campaign only; otherwise stop spending on them.'
    """
    try:
        return ACTIONS[name]
    except KeyError:
        raise KeyError(f"unknown segment name {name!r}; expected one of {SEGMENT_NAMES}") from None


def label_for(name: str) -> str:
    """Return the human label of a segment name (the name itself when it is not one of ours).

    >>> label_for("cant_lose_them")
    "Can't lose them"
    >>> label_for("segment_7")
    'segment_7'
    """
    return LABELS.get(name, name)
