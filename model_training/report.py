"""The training report: one self-contained HTML page.

The charts (:mod:`model_training.charts`) are embedded as base64 PNGs and the CSS is inline,
so the page opens offline and can be mailed as a single file. Every piece of text is
HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from model_training.card import SEGMENT_COLUMNS
from model_training.charts import (
    RFM_LABELS,
    plot_countries,
    plot_months,
    plot_orders,
    plot_radar,
    plot_rfm,
    plot_scatter,
    plot_silhouette,
    plot_sizes,
    segment_colours,
)
from model_training.data.exploration import Exploration

__all__ = ["COMPARISON_COLUMNS", "write_report"]

COMPARISON_COLUMNS = ["method", "k", "silhouette", "calinski_harabasz", "davies_bouldin", "chosen"]

_NUMERIC_TEXT = re.compile(r"-?[\d,]+(\.\d+)?%?")

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #4c72b0; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 2em; color: #333; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .7em; }
th { background: #f0f3f8; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { background: #e8f4e8; font-weight: bold; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: .9em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
.grid figure { flex: 1 1 480px; }
"""


def write_report(
    path: Path,
    *,
    title: str,
    summary: dict[str, object],
    exploration: Exploration,
    comparison: pd.DataFrame,
    view2d: pd.DataFrame,
    segments: pd.DataFrame,
    cleaning_counts: dict[str, int],
) -> None:
    """Write the training report as one self-contained HTML file.

    Parameters
    ----------
    path
        Where to write the page (parent folders are created).
    title
        Page title.
    summary
        Key facts of the run (data, reference time, model version, ...), shown as a table.
    exploration
        Descriptive figures from :func:`~model_training.exploration.explore`.
    comparison
        One row per candidate model: ``method``, ``k``, ``silhouette``,
        ``calinski_harabasz``, ``davies_bouldin``, ``chosen`` (bool).
    view2d
        Customers projected to 2-D: columns ``x``, ``y``, ``segment`` (segment name).
    segments
        One row per segment: ``name``, ``size``, ``share``, ``revenue_share``,
        ``recency_days``, ``frequency``, ``monetary`` (centroid profile), ``action``.
    cleaning_counts
        Lines removed by each cleaning rule.
    """
    colours = segment_colours(segments, view2d)
    parts = [
        f"<h1>{_esc(title)}</h1>",
        "<h2>Summary</h2>",
        _table(["", "value"], [[key, value] for key, value in summary.items()]),
        "<h2>Cleaning</h2>",
        _table(
            ["rule", "lines removed"],
            [
                *([rule, count] for rule, count in cleaning_counts.items()),
                ["total", sum(cleaning_counts.values())],
            ],
        ),
        "<h2>The data</h2>",
        '<div class="grid">',
        _figure(plot_countries(exploration.revenue_by_country), "Net revenue by country"),
        _figure(plot_months(exploration.revenue_by_month), "Net revenue by month"),
        _figure(
            plot_orders(exploration.orders_by_weekday, exploration.orders_by_hour),
            "Orders (distinct purchase invoices) by weekday and by hour",
        ),
        "</div>",
        "<h2>RFM before and after trimming</h2>",
        _figure(
            plot_rfm(exploration.rfm_values_before, exploration.rfm_values_after),
            "RFM distributions of all customers (top) and of those used for fitting (bottom)",
        ),
        '<div class="grid"><div><h3>All customers</h3>',
        _describe_table(exploration.rfm_before),
        "</div><div><h3>Used for fitting</h3>",
        _describe_table(exploration.rfm_after),
        "</div></div>",
        "<h2>Model comparison</h2>",
        _comparison_table(comparison),
        _figure(plot_silhouette(comparison), "Silhouette by number of clusters and method"),
        "<h2>Segments</h2>",
        '<div class="grid">',
        _figure(plot_scatter(view2d, colours), "Customers in two dimensions, by segment"),
        _figure(plot_radar(segments, colours), "Segment profiles (outer = better)"),
        "</div>",
        _figure(plot_sizes(segments, colours), "Customers per segment"),
        _segment_table(segments),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


# --- HTML -------------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _format(value: object) -> str:
    """Render a cell: thousands separators, sensible decimals, ISO times."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer():
            return f"{number:,.0f}"
        if abs(number) < 0.01:
            return f"{number:.3g}"
        return f"{number:,.2f}" if abs(number) >= 100 else f"{number:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    row_classes: Sequence[str] | None = None,
    formats: Mapping[int, str] | None = None,
) -> str:
    """An HTML table; ``formats`` maps a column position to a format spec (``".1%"``)."""
    out = ["<table>", "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in headers) + "</tr>"]
    for number, row in enumerate(rows):
        cells = []
        for position, value in enumerate(row):
            spec = (formats or {}).get(position)
            text = format(value, spec) if spec and _is_number(value) else _format(value)
            css = ' class="num"' if _is_number(value) or _NUMERIC_TEXT.fullmatch(text) else ""
            cells.append(f"<td{css}>{_esc(text)}</td>")
        css = f' class="{_esc(row_classes[number])}"' if row_classes and row_classes[number] else ""
        out.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _describe_table(described: pd.DataFrame) -> str:
    headers = ["", *(RFM_LABELS.get(str(c), str(c)) for c in described.columns)]
    rows: list[list[object]] = []
    for stat, values in described.iterrows():
        if stat == "count":
            rows.append([str(stat), *(int(v) for v in values)])
        else:
            rows.append([str(stat), *(f"{float(v):,.2f}" for v in values)])
    return _table(headers, rows)


def _comparison_table(comparison: pd.DataFrame) -> str:
    frame = comparison.reindex(columns=COMPARISON_COLUMNS)
    chosen = frame["chosen"].fillna(False).astype(bool).tolist()
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    return _table(
        ["method", "k", "silhouette", "Calinski-Harabasz", "Davies-Bouldin", "chosen"],
        rows,
        row_classes=["chosen" if c else "" for c in chosen],
        formats={2: ".3f", 3: ",.0f", 4: ".3f"},
    )


def _segment_table(segments: pd.DataFrame) -> str:
    frame = segments.reindex(columns=SEGMENT_COLUMNS)
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    return _table(
        ["segment", "customers", "share", "revenue share", "recency (days)", "frequency",
         "monetary (£)", "marketing action"],
        rows,
        formats={2: ".1%", 3: ".1%", 4: ",.0f", 5: ",.1f", 6: ",.2f"},
    )  # fmt: skip


def _cell(value: object) -> object:
    """Unwrap numpy scalars so that formatting sees plain Python numbers."""
    return value.item() if isinstance(value, np.generic) else value


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )
