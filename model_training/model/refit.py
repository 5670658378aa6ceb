"""Retrain the segmentation model from the live RFM state, with stable names and quality gates.

Pure: no Redis, no files. The stream hands in the current RFM of every customer and the model
it serves; this module fits a candidate with the very code of ``rfm train``
(:func:`~model_training.fitting.fit_segmenter`, method ``auto``), keeps segment names stable
(:mod:`model_training.model.stability`), measures how customers would move (the migration
matrix) and decides whether the candidate may be published (:class:`QualityGates`).

Scale
-----
Selection (agglomerative clustering and the silhouette) is O(n²), so a population of millions
is never fitted whole: the model is fitted on a deterministic random sample of at most
``max_fit_rows`` customers, and candidates are compared on a sub-sample of at most
``max_select_rows`` (see :func:`~model_training.fitting.fit_segmenter`). Every customer is
still scored by the fitted estimator for the names, the migration and the gates. Samples are
drawn from ``random_state`` over the customers in id order, so the same state gives the same
model whatever order the store listed it in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_training.card import model_card, segment_table
from model_training.data.rules import NON_PRODUCT_PATTERN
from model_training.fitting import fit_segmenter
from model_training.model.artifact import LoadedModel, make_version
from model_training.model.features import FEATURES, TRIM_COLUMNS, rfm_matrix, trim_mask
from model_training.model.segmenter import RFMSegmenter
from model_training.model.stability import MATCH_THRESHOLD, segment_centroids, stable_names

__all__ = [
    "MAX_FIT_ROWS",
    "MAX_SELECT_ROWS",
    "QualityGates",
    "RetrainResult",
    "migration_matrix",
    "retrain",
]

#: Default cap on the customers the model is fitted on.
MAX_FIT_ROWS = 50_000
#: Default cap on the customers candidate models are compared on (O(n²) steps): about 5 s on
#: 2 cores for the 15 candidates, measured.
MAX_SELECT_ROWS = 5_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class QualityGates:
    """What a retrained model must meet to be published.

    Attributes
    ----------
    min_silhouette
        Smallest silhouette of the chosen model (in its selection space).
    min_segment_share
        Smallest share of all customers any segment may hold: a near-empty segment is noise
        nobody can run a campaign on.
    max_changed_share
        Largest share of customers whose segment name may change from the previous model: a
        larger upheaval is more likely a broken model (or data) than a real shift, and needs a
        person to look (``rfm models promote``).
    """

    min_silhouette: float = 0.15
    min_segment_share: float = 0.01
    max_changed_share: float = 0.35


@dataclass(frozen=True)
class RetrainResult:
    """Outcome of :func:`retrain`.

    Attributes
    ----------
    accepted
        True if every gate passed: the model may be published.
    reasons
        Why it was rejected, one sentence per failed gate; empty if accepted.
    segmenter
        The fitted model, named stably (published or not, for inspection).
    card
        A full model card as ``rfm train`` writes, plus ``migration``, ``gates``,
        ``trained_from`` (``"stream"``), ``previous_version`` and ``sampling``.
    changed_share
        Share of customers whose segment name differs between the previous model and this
        one (0 without a previous model).
    migration
        Customers per (previous segment, new segment): index previous names, columns new
        names; empty without a previous model.
    """

    accepted: bool
    reasons: list[str]
    segmenter: RFMSegmenter
    card: dict[str, Any] = field(repr=False)
    changed_share: float
    migration: pd.DataFrame = field(repr=False)

    @property
    def version(self) -> str:
        """The new model's version id."""
        return str(self.card["version"])


def retrain(
    rfm: pd.DataFrame,
    t_ref: datetime,
    previous: LoadedModel | None,
    gates: QualityGates = QualityGates(),  # frozen: a shared default instance is safe
    *,
    max_fit_rows: int = MAX_FIT_ROWS,
    max_select_rows: int = MAX_SELECT_ROWS,
    random_state: int = 0,
    match_threshold: float = MATCH_THRESHOLD,
    non_product_pattern: str = NON_PRODUCT_PATTERN,
) -> RetrainResult:
    """Fit a new model on the current RFM state and judge it against the previous one.

    Parameters
    ----------
    rfm
        One row per customer, indexed by ``customer_id``, columns ``recency_days``,
        ``frequency``, ``monetary`` (at ``t_ref``).
    t_ref
        The time the RFM is computed at (the stream clock); part of the version id.
    previous
        The model being served, or ``None`` (then no migration and no changed-share gate).
    gates
        Quality gates to apply.
    max_fit_rows
        Fit on a deterministic random sample of at most this many customers.
    max_select_rows
        Compare candidate models on at most this many of those.
    random_state
        Seed of the samples and of every model.
    match_threshold
        Name inheritance threshold, see :mod:`model_training.model.stability`.
    non_product_pattern
        The product rule the state's RFM was computed with (the stream's setting), recorded in
        the card.

    Returns
    -------
    RetrainResult
        The stably named model, its card, the migration and the verdict.

    Raises
    ------
    ModelTrainingError
        Too few customers or distinct profiles to fit any model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rfm = pd.DataFrame({"recency_days": rng.integers(0, 300, 300),
    ...                     "frequency": rng.integers(1, 20, 300),
    ...                     "monetary": rng.gamma(2.0, 400.0, 300)},
    ...                    index=pd.Index([str(i) for i in range(300)], name="customer_id"))
    >>> first = retrain(rfm, datetime(2011, 12, 10), None)
    >>> again = retrain(rfm, datetime(2011, 12, 10), LoadedModel(
    ...     first.version, first.segmenter, first.card, list(first.segmenter.segment_name_array_)))
    >>> again.changed_share, again.segmenter.segment_names_ == first.segmenter.segment_names_
    (0.0, True)
    """
    # Id order makes the sample, hence the model, independent of how the store listed rows.
    ordered = rfm.sort_index(kind="stable")
    x = rfm_matrix(ordered)
    fit_positions = _sample(x.shape[0], max_fit_rows, random_state)
    fit_frame = ordered.iloc[fit_positions] if fit_positions is not None else ordered
    segmenter, comparison, extras = fit_segmenter(
        fit_frame,
        "auto",
        random_state=random_state,
        max_select_rows=max_select_rows,
    )

    new_labels = segmenter.predict(x)
    migration = pd.DataFrame()
    changed = 0
    inherited: list[str] = []
    if previous is not None:
        x_fit = rfm_matrix(fit_frame)
        fitted_on = x_fit if extras.fit_rows is None else x_fit[extras.fit_rows]
        old_labels = previous.segmenter.predict(x)
        new_labels, inherited = _keep_names(
            segmenter,
            previous,
            x,
            new_labels,
            old_labels,
            population=fitted_on[trim_mask(fitted_on, segmenter.trim_quantile, TRIM_COLUMNS)],
            threshold=match_threshold,
        )
        migration = migration_matrix(
            old_labels, previous.segment_names, new_labels, _names(segmenter)
        )
        changed = _changed(migration)
    changed_share = changed / x.shape[0] if previous is not None else 0.0

    names = segmenter.segment_name_array_[new_labels]
    segments = segment_table(ordered, names, segmenter)
    version = make_version(t_ref, _fingerprint(x, ordered.index, segmenter, previous))
    card = model_card(
        version=version,
        method="auto",
        segmenter=segmenter,
        extras=extras,
        segments=segments,
        t_ref=t_ref,
        n_customers=int(x.shape[0]),
        cleaning={},
        comparison=comparison,
        non_product_pattern=non_product_pattern,
    )
    reasons, measured = _apply_gates(gates, card["silhouette"], segments, previous, changed_share)
    card.update(
        {
            "trained_from": "stream",
            "previous_version": None if previous is None else previous.version,
            "sampling": {
                "n_customers": int(x.shape[0]),
                "max_fit_rows": int(max_fit_rows),
                "n_fit_rows": int(fit_frame.shape[0]),
                "max_select_rows": int(max_select_rows),
                "random_state": int(random_state),
            },
            "migration": _migration_card(previous, migration, changed, changed_share, inherited),
            "gates": {**asdict(gates), **measured, "passed": not reasons, "reasons": reasons},
        }
    )
    return RetrainResult(
        accepted=not reasons,
        reasons=reasons,
        segmenter=segmenter,
        card=card,
        changed_share=changed_share,
        migration=migration,
    )


def migration_matrix(
    old_labels: IntArray,
    old_names: list[str],
    new_labels: IntArray,
    new_names: list[str],
) -> pd.DataFrame:
    """Count customers per (old segment, new segment).

    Parameters
    ----------
    old_labels, new_labels
        Each customer's label under the previous and the new model (same customers, same
        order).
    old_names, new_names
        Names by label of each model.

    Returns
    -------
    pandas.DataFrame
        Index the old names, columns the new names (both in label order), int64 counts that
        add up to the number of customers.

    Examples
    --------
    >>> migration_matrix(np.array([0, 0, 1]), ["a", "b"], np.array([1, 0, 0]), ["a", "c"])
       a  c
    a  1  1
    b  1  0
    """
    k_old, k_new = len(old_names), len(new_names)
    # One bincount over combined codes: far cheaper than a crosstab of a million strings.
    counts = np.bincount(old_labels * k_new + new_labels, minlength=k_old * k_new)
    return pd.DataFrame(
        counts.reshape(k_old, k_new).astype(np.int64),
        index=pd.Index(old_names),
        columns=pd.Index(new_names),
    )


def _sample(n: int, limit: int, random_state: int) -> IntArray | None:
    if n <= limit:
        return None
    rng = np.random.default_rng(random_state)
    positions: IntArray = np.sort(rng.choice(n, size=limit, replace=False))
    return positions


def _names(segmenter: RFMSegmenter) -> list[str]:
    return [str(name) for name in segmenter.segment_name_array_]


def _keep_names(
    segmenter: RFMSegmenter,
    previous: LoadedModel,
    x: FloatArray,
    new_labels: IntArray,
    old_labels: IntArray,
    *,
    population: FloatArray,
    threshold: float,
) -> tuple[IntArray, list[str]]:
    """Rename ``segmenter`` stably; return its labels and the names it inherited."""
    z = segmenter.scaled_features(x)
    k_new = int(segmenter.n_clusters)
    match = stable_names(
        segment_centroids(z, new_labels, k_new),
        segment_centroids(z, old_labels, len(previous.segment_names)),
        list(previous.segment_names),
        segmenter.profiles_,
        population,
        threshold=threshold,
    )
    segmenter.set_segment_names(match.names)
    return new_labels, sorted(match.names[label] for label in match.inherited)


def _changed(migration: pd.DataFrame) -> int:
    """Customers whose segment name differs (off the name-to-same-name cells)."""
    same = sum(int(migration.loc[name, name]) for name in migration.index if name in migration)
    return int(migration.to_numpy().sum()) - same


def _apply_gates(
    gates: QualityGates,
    silhouette: float | None,
    segments: pd.DataFrame,
    previous: LoadedModel | None,
    changed_share: float,
) -> tuple[list[str], dict[str, Any]]:
    reasons: list[str] = []
    if silhouette is None or not math.isfinite(silhouette):
        reasons.append("silhouette could not be computed")
    elif silhouette < gates.min_silhouette:
        reasons.append(f"silhouette {silhouette:.3f} is below {gates.min_silhouette:.3f}")
    smallest = segments.iloc[int(np.argmin(segments["share"].to_numpy()))]
    if float(smallest["share"]) < gates.min_segment_share:
        reasons.append(
            f"segment {smallest['name']} holds {float(smallest['share']):.2%} of customers, "
            f"below {gates.min_segment_share:.2%}"
        )
    if previous is not None and changed_share > gates.max_changed_share:
        reasons.append(
            f"{changed_share:.2%} of customers would change segment (from {previous.version}), "
            f"above {gates.max_changed_share:.2%}"
        )
    measured = {
        "silhouette": silhouette,
        "smallest_segment": str(smallest["name"]),
        "smallest_segment_share": float(smallest["share"]),
        "changed_share": None if previous is None else changed_share,
    }
    return reasons, measured


def _migration_card(
    previous: LoadedModel | None,
    migration: pd.DataFrame,
    changed: int,
    changed_share: float,
    inherited: list[str],
) -> dict[str, Any] | None:
    if previous is None:
        return None
    matrix = {
        str(old): {str(new): int(count) for new, count in row.items() if count}
        for old, row in migration.iterrows()
    }
    return {
        "from_version": previous.version,
        "matrix": matrix,
        "changed": changed,
        "changed_share": changed_share,
        "inherited_names": inherited,
    }


def _fingerprint(
    x: FloatArray,
    customers: pd.Index,
    segmenter: RFMSegmenter,
    previous: LoadedModel | None,
) -> bytes:
    # The previous version and the names are part of the identity: the same state retrained
    # against another predecessor may name segments differently.
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update("\n".join(map(str, customers)).encode())
    digest.update(repr(sorted(segmenter.get_params().items())).encode())
    digest.update(repr(_names(segmenter)).encode())
    digest.update(repr(list(FEATURES)).encode())
    digest.update(b"stream:" + (previous.version if previous else "").encode())
    return digest.digest()
