"""``rfm train``: the batch training command (a thin adapter over :mod:`.pipeline`)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import click

from model_training.data.rules import NON_PRODUCT_PATTERN, ProductRule
from model_training.exceptions import RFMError
from model_training.model.naming import label_for
from model_training.pipeline import TrainingResult
from model_training.pipeline import train as run_training

__all__ = ["summary_lines", "train"]

# Exit status for bad input, like click's own usage errors.
_EXIT_BAD_INPUT = 2


@click.command("train")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Transactions file in the Online Retail format (.csv, .csv.gz or .xlsx).",
)
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for rfm.csv, model.joblib, model_card.json and report.html.",
)
@click.option(
    "--t-ref",
    "t_ref",
    default=None,
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Reference time of the RFM (default: midnight after the last transaction); "
    "invoices dated after it are left out.",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "seed"]),
    default="auto",
    show_default=True,
    help="auto: compare KMeans, GMM and Ward over k=4..8; seed: the reference recipe.",
)
@click.option(
    "--non-product-pattern",
    "non_product_pattern",
    envvar="RFM_NON_PRODUCT_PATTERN",
    default=NON_PRODUCT_PATTERN,
    show_default=True,
    help="Regular expression matched against the whole stock code: codes it matches are not "
    "products (default: codes beginning with a letter). Recorded in the model card; the "
    "stream should use the same (RFM_NON_PRODUCT_PATTERN).",
)
def train(
    input_path: Path,
    output_dir: Path,
    t_ref: datetime | None,
    method: str,
    non_product_pattern: str,
) -> None:
    """Train the segmentation model from historical transactions."""
    started = time.perf_counter()
    rule = _product_rule(non_product_pattern)

    def progress(step: str, seconds: float | None) -> None:
        elapsed = time.perf_counter() - started
        if seconds is None:
            click.echo(f"[{elapsed:6.1f}s] {step} ...")
        else:
            click.echo(f"[{elapsed:6.1f}s] {step} done in {seconds:.2f} s")

    try:
        result = run_training(
            input_path,
            output_dir,
            t_ref=t_ref,
            method="seed" if method == "seed" else "auto",
            progress=progress,
            rule=rule,
        )
    except RFMError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(_EXIT_BAD_INPUT) from None
    for line in summary_lines(result):
        click.echo(line)


def _product_rule(pattern: str) -> ProductRule:
    """The rule of ``--non-product-pattern``; a bad pattern ends the command with one line."""
    try:
        return ProductRule(pattern)
    except ValueError as exc:
        source = click.get_current_context().get_parameter_source("non_product_pattern")
        name = (
            "RFM_NON_PRODUCT_PATTERN"
            if source is click.core.ParameterSource.ENVIRONMENT
            else "--non-product-pattern"
        )
        click.echo(f"error: {name}: {exc}", err=True)
        raise SystemExit(_EXIT_BAD_INPUT) from None


def summary_lines(result: TrainingResult) -> list[str]:
    """Format the end-of-run summary: the model, then one line per segment by share of revenue.

    Segments show as their human labels (:data:`~model_training.model.naming.LABELS`), as
    in the report; R, F and M are the segment's medians.

    Parameters
    ----------
    result
        What :func:`~model_training.pipeline.train` returned.

    Returns
    -------
    list of str
        Lines to print.
    """
    card = result.card
    silhouette = card["silhouette"]
    accuracy = card["classifier_accuracy"]
    lines = [
        "",
        f"model {result.version}: method={card['method']} k={card['n_segments']} "
        f"silhouette={silhouette:.3f}"
        + ("" if accuracy is None else f" classifier_accuracy={accuracy:.3f}"),
        f"customers: {card['n_customers']} ({card['n_fit_customers']} used for fitting)",
        "",
    ]
    table = result.segments.sort_values("revenue_share", ascending=False, kind="stable")
    lines.append(
        f"{'segment':<20} {'size':>6} {'share':>6} {'revenue':>7} "
        f"{'R days':>6} {'F':>4} {'M £':>9}  action (R, F, M: medians)"
    )
    for row in table.itertuples(index=False):
        lines.append(
            f"{label_for(str(row.name)):<20} {row.size:>6} {row.share:>6.1%} "
            f"{row.revenue_share:>7.1%} {_num(row.recency_days_median, 0):>6} "
            f"{_num(row.frequency_median, 0):>4} {_num(row.monetary_median, 0):>9}  {row.action}"
        )
    lines.append("")
    lines.append(f"written to {result.output_dir} in {result.timings.get('total', 0.0):.1f} s")
    return lines


def _num(value: object, digits: int = 1) -> str:
    # An empty segment (a mixture component nobody falls in) has no mean.
    if isinstance(value, int | float) and not math.isnan(value):
        return f"{value:.{digits}f}"
    return "-"
