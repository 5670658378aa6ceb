"""The batch training pipeline: transactions file in, model, RFM table and report out.

Steps (each timed and reported to ``progress``): ``load``, ``clean``, ``rfm``, ``model``
(selection and fit, :func:`~model_training.fitting.fit_segmenter`), ``write`` (``rfm.csv``,
``model.joblib``, ``model_card.json``) and ``report`` (``report.html``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from model_training import report
from model_training.card import model_card, segment_table
from model_training.data import exploration
from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import compute_rfm
from model_training.data.rules import DEFAULT_RULE, ProductRule, default_t_ref
from model_training.fitting import MethodChoice, fit_segmenter
from model_training.model.artifact import make_version, save_model
from model_training.model.features import FEATURES, rfm_matrix
from model_training.model.segmenter import RFMSegmenter

__all__ = ["REPORT_FILE", "RFM_CSV", "ProgressCallback", "TrainingResult", "train"]

RFM_CSV = "rfm.csv"
REPORT_FILE = "report.html"

#: Called with ``(step, None)`` when a step starts and ``(step, seconds)`` when it ends.
ProgressCallback = Callable[[str, float | None], None]


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
        One row per segment, columns :data:`~model_training.card.SEGMENT_COLUMNS`.
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


def train(
    input_path: str | Path,
    output_dir: str | Path,
    t_ref: datetime | None = None,
    method: MethodChoice = "auto",
    progress: ProgressCallback | None = None,
    rule: ProductRule = DEFAULT_RULE,
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
        Reference time of the RFM; default midnight after the last transaction. Invoices
        dated after it are left out (the cleaning rule ``after_t_ref``): the RFM is the one
        known at ``t_ref``.
    method
        ``"auto"`` (compare methods and k) or ``"seed"`` (the reference recipe).
    progress
        Optional callback, see :data:`ProgressCallback`.
    rule
        Which stock codes are products; recorded in the card as ``non_product_pattern``.

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
        if t_ref is not None:
            reference = t_ref
        else:
            reference = default_t_ref(pd.Timestamp(frame["invoiced_at"].max()).to_pydatetime())
        clean = clean_transactions(frame, rule, t_ref=reference)
    with step("rfm"):
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
            non_product_pattern=rule.pattern,
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
            customers=rfm[list(FEATURES)].assign(segment=np.asarray(names)),
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


def _summary(input_path: Path, card: dict[str, Any], rows: int) -> dict[str, object]:
    quality = card["quality"]
    summary: dict[str, object] = {
        "input": str(input_path),
        "transaction lines": rows,
        "reference time (t_ref)": card["t_ref"],
        "non-product stock codes (pattern)": card["non_product_pattern"],
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
