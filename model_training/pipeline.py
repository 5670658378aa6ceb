"""The batch training pipeline: transactions file in, model, RFM table and report out.

Steps (each timed and reported to ``progress``): ``load``, ``clean``, ``rfm``, ``model``
(selection and fit), ``write`` (``rfm.csv``, ``model.joblib``, ``model_card.json``) and
``report`` (``report.html``). :func:`fit_segmenter` is the model step alone, working from an
RFM frame, so the stream can retrain from its live RFM state with the same code.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.decomposition import PCA

from model_training import report
from model_training.data import exploration
from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.exceptions import ModelTrainingError
from model_training.model.artifact import library_versions, make_version, save_model
from model_training.model.features import FEATURES, TRIM_QUANTILE, rfm_matrix
from model_training.model.naming import SEGMENT_NAMES, action_for
from model_training.model.seed import SeedResult, fit_seed
from model_training.model.segmenter import RFMSegmenter
from model_training.model.selection import DEFAULT_K, best_row, compare_methods, fit_space

__all__ = [
    "MIN_CUSTOMERS",
    "REPORT_FILE",
    "RFM_CSV",
    "SEGMENT_COLUMNS",
    "TRANSFORM_DESCRIPTIONS",
    "FitExtras",
    "ProgressCallback",
    "TrainingResult",
    "fit_segmenter",
    "model_card",
    "segment_table",
    "train",
]

#: The segment table's columns, as the report shows them.
SEGMENT_COLUMNS = report.SEGMENT_COLUMNS
RFM_CSV = "rfm.csv"
REPORT_FILE = "report.html"
#: Below this many customers no segmentation is attempted.
MIN_CUSTOMERS = 10
TRANSFORM_DESCRIPTIONS = {
    "log": "log1p(max(x, 0)) per feature, then standard scaling (fitted on trimmed customers)",
    "standard": "standard scaling of raw RFM (fitted on trimmed customers), as the reference",
}

#: Called with ``(step, None)`` when a step starts and ``(step, seconds)`` when it ends.
ProgressCallback = Callable[[str, float | None], None]
MethodChoice = Literal["auto", "seed"]


@dataclass(frozen=True)
class FitExtras:
    """What model fitting found, beyond the model itself.

    Attributes
    ----------
    method
        ``"auto"`` or ``"seed"`` (how the model was chosen).
    quality
        Figures of the chosen model: ``silhouette``, ``calinski_harabasz``,
        ``davies_bouldin``, ``silhouette_space`` and, for the seed recipe, its own figures.
    view2d
        A 2-D picture of the customers: columns ``x``, ``y``, ``segment``.
    seed
        The seed recipe's full result (``None`` for ``auto``).
    fit_rows
        Positions (in the input frame) of the rows the final model was fitted on, when it was
        fitted on a sample (``max_select_rows``); ``None`` when fitted on every row.
    """

    method: str
    quality: dict[str, Any]
    view2d: pd.DataFrame
    seed: SeedResult | None = None
    fit_rows: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True)
class TrainingResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    output_dir
        Where the files were written.
    version
        Model version id.
    card
        The model card as written.
    segments
        One row per segment, columns :data:`SEGMENT_COLUMNS`.
    comparison
        Scores of every candidate model.
    timings
        Seconds spent in each step, plus ``total``.
    """

    output_dir: Path
    version: str
    card: dict[str, Any]
    segments: pd.DataFrame
    comparison: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The clustering method of the model (``kmeans``, ``tsne_kmeans``, ...)."""
        return str(self.card["method"])

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return int(self.card["n_segments"])

    @property
    def silhouette(self) -> float | None:
        """Silhouette of the chosen model (in the space it was chosen in)."""
        value = self.card["silhouette"]
        return None if value is None else float(value)


def fit_segmenter(
    rfm_frame: pd.DataFrame,
    method: MethodChoice = "auto",
    *,
    k_values: Iterable[int] | None = None,
    random_state: int = 0,
    trim_quantile: float | None = TRIM_QUANTILE,
    max_select_rows: int | None = None,
) -> tuple[RFMSegmenter, pd.DataFrame, FitExtras]:
    """Choose and fit the segmentation model from an RFM frame alone.

    Parameters
    ----------
    rfm_frame
        One row per customer with columns ``recency_days``, ``frequency``, ``monetary``.
    method
        ``"auto"``: KMeans, GaussianMixture and Ward agglomerative clustering for each k,
        best silhouette wins. ``"seed"``: the reference recipe (:mod:`model_training.model.seed`).
    k_values
        Numbers of segments to try (default 4..8 for ``auto``, 2..11 for ``seed``).
    random_state
        Seed of every random step.
    trim_quantile
        Customers above this quantile of frequency or monetary are left out of the fit.
    max_select_rows
        ``auto`` only. Agglomerative clustering and the silhouette cost O(n²) time (Ward also
        O(n²) memory), so with more rows than this the candidates are compared on a
        deterministic random sample of this many rows (seeded by ``random_state``), and an
        agglomerative winner is fitted on that sample too (its classifier still places every
        customer); KMeans and Gaussian mixtures are fitted on every row. ``None`` (the
        default, as ``rfm train``) uses every row everywhere.

    Returns
    -------
    tuple
        ``(segmenter, comparison, extras)``: the fitted model, the scores of every candidate
        (columns ``method, k, silhouette, calinski_harabasz, davies_bouldin, chosen``) and a
        :class:`FitExtras`.

    Raises
    ------
    ModelTrainingError
        Too few customers, or no candidate could be scored.
    """
    x = rfm_matrix(rfm_frame)
    if x.shape[0] < MIN_CUSTOMERS:
        raise ModelTrainingError(
            f"{x.shape[0]} customers with a purchase; at least {MIN_CUSTOMERS} are needed"
        )
    if method == "seed":
        seed = (
            fit_seed(x, random_state=random_state, trim_quantile=trim_quantile)
            if k_values is None
            else fit_seed(
                x, k_values=k_values, random_state=random_state, trim_quantile=trim_quantile
            )
        )
        segmenter = seed.segmenter
        kept = x[segmenter.fit_mask_]
        view2d = _view_frame(seed.tsne_view, segmenter.predict_segments(kept))
        quality: dict[str, Any] = {
            "silhouette": seed.silhouette_tsne,
            **_scores(seed.comparison),
            "silhouette_space": "t-SNE view (perplexity 50) of standard-scaled trimmed RFM",
            "pca_explained_variance": list(seed.pca_explained_variance),
            "k_pca": seed.k_pca,
            "silhouette_pca": seed.silhouette_pca,
            "k_tsne": seed.k_tsne,
            "silhouette_tsne": seed.silhouette_tsne,
        }
        return segmenter, seed.comparison, FitExtras("seed", quality, view2d, seed)
    if method != "auto":
        raise ValueError(f"method must be 'auto' or 'seed', got {method!r}")

    sample: npt.NDArray[np.int64] | None = None
    x_select = x
    if max_select_rows is not None and x.shape[0] > max_select_rows:
        rng = np.random.default_rng(random_state)
        # Sorted so the sample keeps the input order: the same rows give the same model.
        sample = np.sort(rng.choice(x.shape[0], size=max_select_rows, replace=False))
        x_select = x[sample]
    _, z = fit_space(x_select, feature_transform="log", trim_quantile=trim_quantile)
    ks = DEFAULT_K if k_values is None else k_values
    comparison = compare_methods(z, k_values=ks, random_state=random_state)
    best = best_row(comparison)
    method_name = str(best["method"])
    if method_name != "agglomerative":
        sample, x_select = None, x  # linear-time methods learn from every row
    segmenter = RFMSegmenter(
        method=method_name,  # type: ignore[arg-type]
        n_clusters=int(best["k"]),
        feature_transform="log",
        trim_quantile=trim_quantile,
        random_state=random_state,
    ).fit(x_select)
    quality = {
        "silhouette": float(best["silhouette"]),
        **_scores(comparison),
        "silhouette_space": "log1p + standard-scaled RFM of trimmed customers",
    }
    if max_select_rows is not None and x.shape[0] > max_select_rows:
        quality["selection_rows"] = int(max_select_rows)
    extras = FitExtras("auto", quality, _pca_view(segmenter, x), fit_rows=sample)
    return segmenter, comparison, extras


def _scores(comparison: pd.DataFrame) -> dict[str, float]:
    best = best_row(comparison)
    return {
        "calinski_harabasz": float(best["calinski_harabasz"]),
        "davies_bouldin": float(best["davies_bouldin"]),
    }


def _pca_view(segmenter: RFMSegmenter, x: npt.NDArray[np.float64]) -> pd.DataFrame:
    """Every customer in the first two principal components of the model's feature space."""
    z = segmenter.scaled_features(x)
    view = PCA(n_components=2, random_state=segmenter.random_state).fit_transform(z)
    return _view_frame(np.asarray(view, dtype=np.float64), segmenter.predict_segments(x))


def _view_frame(view: npt.NDArray[np.float64], names: npt.NDArray[np.str_]) -> pd.DataFrame:
    return pd.DataFrame({"x": view[:, 0], "y": view[:, 1], "segment": names})


def segment_table(
    rfm_frame: pd.DataFrame, names: npt.ArrayLike, segmenter: RFMSegmenter
) -> pd.DataFrame:
    """Summarise the segments over all customers: size, shares, mean RFM and action.

    Parameters
    ----------
    rfm_frame
        One row per customer, RFM columns.
    names
        Each customer's segment name (same order).
    segmenter
        The model (for the list of segments, in label order, including empty ones).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SEGMENT_COLUMNS`, one row per segment in label order.
    """
    frame = rfm_frame[list(FEATURES)].assign(segment=np.asarray(names))
    total_revenue = float(frame["monetary"].clip(lower=0).sum())
    rows = []
    for label in sorted(segmenter.segment_names_):
        name = segmenter.segment_names_[label]
        members = frame[frame["segment"] == name]
        revenue = float(members["monetary"].clip(lower=0).sum())
        rows.append(
            {
                "name": name,
                "size": len(members),
                "share": len(members) / len(frame) if len(frame) else 0.0,
                "revenue_share": revenue / total_revenue if total_revenue > 0 else 0.0,
                "recency_days": float(members["recency_days"].mean()),
                "frequency": float(members["frequency"].mean()),
                "monetary": float(members["monetary"].mean()),
                "action": action_for(name) if name in SEGMENT_NAMES else "",
            }
        )
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def train(
    input_path: str | Path,
    output_dir: str | Path,
    t_ref: datetime | None = None,
    method: MethodChoice = "auto",
    progress: ProgressCallback | None = None,
) -> TrainingResult:
    """Train a segmentation model from a transactions file and write every output.

    Parameters
    ----------
    input_path
        Online Retail transactions (``.csv``, ``.csv.gz`` or ``.xlsx``).
    output_dir
        Folder for ``rfm.csv``, ``model.joblib``, ``model_card.json`` and ``report.html``
        (created if missing).
    t_ref
        Reference time of recency; default midnight after the last transaction.
    method
        ``"auto"`` (compare methods and k) or ``"seed"`` (the reference recipe).
    progress
        Optional callback, see :data:`ProgressCallback`.

    Returns
    -------
    TrainingResult
        Version, card, segment table, comparison and step timings.

    Raises
    ------
    InvalidInputError
        The file cannot be read.
    ModelTrainingError
        The data cannot produce a model.
    """
    input_path = Path(input_path)
    out = Path(output_dir)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    @contextmanager
    def step(name: str) -> Iterator[None]:
        if progress is not None:
            progress(name, None)
        begin = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - begin
        if progress is not None:
            progress(name, timings[name])

    with step("load"):
        frame = load_transactions(input_path)
    with step("clean"):
        clean = clean_transactions(frame)
    with step("rfm"):
        reference = t_ref if t_ref is not None else default_reference_time(clean, frame)
        rfm = compute_rfm(clean, reference)
    with step("model"):
        segmenter, comparison, extras = fit_segmenter(rfm, method)
        x = rfm_matrix(rfm)
        names = segmenter.predict_segments(x)
        segments = segment_table(rfm, names, segmenter)
    with step("write"):
        out.mkdir(parents=True, exist_ok=True)
        _write_rfm_csv(out / RFM_CSV, rfm, names)
        version = make_version(reference, _fingerprint(x, rfm.index, segmenter, method))
        card = model_card(
            version=version,
            method=method,
            segmenter=segmenter,
            extras=extras,
            segments=segments,
            t_ref=reference,
            n_customers=len(rfm),
            cleaning={"rows_in": clean.rows_in, "rows_out": clean.rows_out, **clean.counts},
            comparison=comparison,
        )
        save_model(out, segmenter, card)
    with step("report"):
        trimmed = rfm[segmenter.fit_mask_]
        explored = exploration.explore(frame, clean, rfm, trimmed)
        report.write_report(
            out / REPORT_FILE,
            title=f"RFM segmentation, model {version}",
            summary=_summary(input_path, card, len(frame)),
            exploration=explored,
            comparison=comparison,
            view2d=extras.view2d,
            segments=segments,
            cleaning_counts=dict(clean.counts),
        )
    timings["total"] = time.perf_counter() - started
    return TrainingResult(
        output_dir=out,
        version=version,
        card=card,
        segments=segments,
        comparison=comparison,
        timings=timings,
    )


def _write_rfm_csv(path: Path, rfm: pd.DataFrame, names: npt.ArrayLike) -> None:
    table = pd.DataFrame(
        {
            "customer_id": rfm.index.astype(str),
            "recency_days": rfm["recency_days"].to_numpy(dtype=np.int64),
            "frequency": rfm["frequency"].to_numpy(dtype=np.int64),
            # + 0.0 turns a rounded -0.0 (float noise of a fully returned basket) into 0.00
            "monetary": rfm["monetary"].to_numpy(dtype=np.float64).round(2) + 0.0,
            "segment": np.asarray(names),
        }
    ).sort_values("customer_id", kind="stable")
    table.to_csv(path, index=False, float_format="%.2f", lineterminator="\n")


def _fingerprint(
    x: npt.NDArray[np.float64], customers: pd.Index, segmenter: RFMSegmenter, method: str
) -> bytes:
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update("\n".join(map(str, customers)).encode())
    digest.update(repr((method, sorted(segmenter.get_params().items()))).encode())
    return digest.digest()


def model_card(
    *,
    version: str,
    method: str,
    segmenter: RFMSegmenter,
    extras: FitExtras,
    segments: pd.DataFrame,
    t_ref: datetime,
    n_customers: int,
    cleaning: dict[str, int],
    comparison: pd.DataFrame,
) -> dict[str, Any]:
    """Build the model card ``rfm train`` writes (the stream's retrain writes the same one).

    Parameters
    ----------
    version
        Model version id.
    method
        How the model was chosen (``"auto"`` or ``"seed"``).
    segmenter
        The fitted model.
    extras
        What fitting found (quality figures).
    segments
        The segment table, from :func:`segment_table`.
    t_ref
        Reference time of the RFM.
    n_customers
        Customers scored.
    cleaning
        Cleaning counts (empty when trained from RFM state rather than a file).
    comparison
        Scores of every candidate.

    Returns
    -------
    dict
        The card, JSON-ready once passed through :func:`~model_training.artifact.save_model`.
    """
    quality = dict(extras.quality)
    return {
        "version": version,
        "method": segmenter.method,
        "selection": method,
        "k": int(segmenter.n_clusters),
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "t_ref": pd.Timestamp(t_ref).isoformat(),
        "n_customers": n_customers,
        "n_fit_customers": int(segmenter.fit_mask_.sum()),
        "trim": {"quantile": segmenter.trim_quantile, "columns": ["frequency", "monetary"]},
        "n_segments": int(segmenter.n_clusters),
        "silhouette": quality.get("silhouette"),
        "classifier_accuracy": segmenter.classifier_accuracy_,
        "segments": [
            {key: row[key] for key in SEGMENT_COLUMNS} for row in segments.to_dict("records")
        ],
        "cleaning": cleaning,
        "features": list(FEATURES),
        "transform": TRANSFORM_DESCRIPTIONS[segmenter.feature_transform],
        "quality": quality,
        "comparison": comparison.to_dict("records"),
        "random_state": segmenter.random_state,
        "libraries": library_versions(),
    }


def _summary(input_path: Path, card: dict[str, Any], rows: int) -> dict[str, object]:
    quality = card["quality"]
    summary: dict[str, object] = {
        "input": str(input_path),
        "transaction lines": rows,
        "reference time (t_ref)": card["t_ref"],
        "customers": card["n_customers"],
        "customers used for fitting": card["n_fit_customers"],
        "model version": card["version"],
        "selection": card["selection"],
        "method": card["method"],
        "segments (k)": card["n_segments"],
        "silhouette": _fmt(card["silhouette"]),
        "silhouette computed on": quality.get("silhouette_space"),
        "classifier accuracy (held out)": _fmt(card["classifier_accuracy"]),
        "transform": card["transform"],
    }
    if "pca_explained_variance" in quality:
        ratios = quality["pca_explained_variance"]
        summary["PCA explained variance"] = " / ".join(f"{value:.3f}" for value in ratios)
        summary["best k on PCA view"] = quality["k_pca"]
        summary["best k on t-SNE view"] = quality["k_tsne"]
    return summary


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float | int) else "n/a"
