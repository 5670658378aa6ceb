"""The training report: one self-contained HTML page.

It is written for the marketer first: the segments (a table by share of revenue with each
segment's label, size, median and mean RFM and recommended action, then their charts), then
what the shop sells where and when, then how the model was chosen, and last how the data
were cleaned and trimmed.

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
    plot_rfm_space,
    plot_silhouette,
    plot_sizes,
    segment_colours,
)
from model_training.data.exploration import Exploration, PartialMonth, partial_months
from model_training.model.naming import label_for

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
figcaption, p.note { color: #555; font-size: .9em; }
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
    customers: pd.DataFrame,
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
    customers
        One row per customer: ``recency_days``, ``frequency``, ``monetary`` and ``segment``
        (segment name), drawn in RFM space.
    segments
        The segment table, :func:`~model_training.card.segment_table` (columns
        :data:`~model_training.card.SEGMENT_COLUMNS`; a missing ``label`` is derived from the
        name, missing medians show as "–").
    cleaning_counts
        Lines removed by each cleaning rule.
    """
    table = _by_revenue(segments)
    labelled = table.assign(name=table["label"])
    points = customers.assign(
        segment=[label_for(str(name)) for name in customers.get("segment", [])]
    )
    colours = segment_colours(labelled, points)
    partial = partial_months(exploration.first_line, exploration.last_line)
    parts = [
        f"<h1>{_esc(title)}</h1>",
        _lead(summary, exploration),
        "<h2>Segments by share of revenue</h2>",
        _segment_table(table),
        '<p class="note">Recency: days from the last order to the reference time; frequency: '
        "orders (distinct purchase invoices); monetary: net spend (purchases minus returns). "
        "Medians are the typical customer; means are pulled up by the few big buyers.</p>",
        _figure(plot_rfm_space(points, colours), "Customers by recency against frequency and "
                "spend, coloured by segment"),
        '<div class="grid">',
        _figure(plot_radar(labelled, colours), "Segment profiles (outer = better)"),
        _figure(plot_sizes(labelled, colours), "Customers per segment"),
        "</div>",
        "<h2>Sales</h2>",
        *(_partial_note(month) for month in partial),
        '<div class="grid">',
        _figure(plot_countries(exploration.revenue_by_country), "Net revenue by country"),
        _figure(
            plot_months(exploration.revenue_by_month, [month.month for month in partial]),
            "Net revenue by month",
        ),
        "</div>",
        _figure(
            plot_orders(exploration.orders_by_weekday, exploration.orders_by_hour),
            "Orders by weekday and by hour",
        ),
        "<h2>The model</h2>",
        _table(["", "value"], [[key, value] for key, value in summary.items()]),
        _comparison_table(comparison),
        _figure(plot_silhouette(comparison), "Silhouette by number of clusters and method"),
        "<h2>Data preparation</h2>",
        "<h3>Cleaning</h3>",
        _table(
            ["rule", "lines removed"],
            [
                *([rule, count] for rule, count in cleaning_counts.items()),
                ["total", sum(cleaning_counts.values())],
            ],
        ),
        "<h3>RFM before and after trimming</h3>",
        _figure(
            plot_rfm(exploration.rfm_values_before, exploration.rfm_values_after),
            "RFM distributions of all customers and of those used for fitting",
            caption="Top: all customers; bottom: those used for fitting (the largest "
            "buyers by frequency or spend are left out of the fit, then placed by the model).",
        ),
        '<div class="grid"><div><h4>All customers</h4>',
        _describe_table(exploration.rfm_before),
        "</div><div><h4>Used for fitting</h4>",
        _describe_table(exploration.rfm_after),
        "</div></div>",
    ]  # fmt: skip
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def _by_revenue(segments: pd.DataFrame) -> pd.DataFrame:
    """The segment table, largest share of revenue first, every column present."""
    table = segments.reindex(columns=SEGMENT_COLUMNS)
    if "label" not in segments:
        table["label"] = [label_for(str(name)) for name in table["name"]]
    table["label"] = [
        label_for(str(name)) if pd.isna(label) else str(label)
        for name, label in zip(table["name"], table["label"], strict=True)
    ]
    return table.sort_values("revenue_share", ascending=False, kind="stable")


def _lead(summary: Mapping[str, object], exploration: Exploration) -> str:
    facts = []
    customers = summary.get("customers")
    if customers is not None:
        facts.append(f"{_format(customers)} customers")
    if exploration.first_line is not None and exploration.last_line is not None:
        facts.append(
            f"orders from {exploration.first_line:%d %b %Y} to {exploration.last_line:%d %b %Y}"
        )
    t_ref = summary.get("reference time (t_ref)")
    if t_ref is not None:
        facts.append(f"recency counted in days to {pd.Timestamp(str(t_ref)):%d %b %Y %H:%M}")
    return f'<p class="note">{_esc("; ".join(facts))}.</p>' if facts else ""


def _partial_note(month: PartialMonth) -> str:
    name = month.month.strftime("%B %Y")
    return (
        f'<p class="note"><strong>{_esc(name)} is a partial month</strong>: the data cover '
        f"days {month.first_day} to {month.last_day} of {month.days}, so its revenue is not "
        "comparable with the other months (pale bar).</p>"
    )


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


_SEGMENT_HEADERS = {
    "label": "segment",
    "size": "customers",
    "share": "share of customers",
    "revenue_share": "share of revenue",
    "recency_days_median": "recency, days (median)",
    "recency_days": "recency, days (mean)",
    "frequency_median": "orders (median)",
    "frequency": "orders (mean)",
    "monetary_median": "spend, £ (median)",
    "monetary": "spend, £ (mean)",
    "action": "marketing action",
}
_SEGMENT_FORMATS = {"share": ".1%", "revenue_share": ".1%", "recency_days_median": ",.0f",
                    "recency_days": ",.0f", "frequency_median": ",.0f", "frequency": ",.1f",
                    "monetary_median": ",.0f", "monetary": ",.0f"}  # fmt: skip


def _segment_table(table: pd.DataFrame) -> str:
    columns = list(_SEGMENT_HEADERS)
    rows = [[_cell(v) for v in row] for row in table[columns].itertuples(index=False)]
    formats = {columns.index(column): spec for column, spec in _SEGMENT_FORMATS.items()}
    return _table([_SEGMENT_HEADERS[c] for c in columns], rows, formats=formats)


def _cell(value: object) -> object:
    """Unwrap numpy scalars so that formatting sees plain Python numbers."""
    return value.item() if isinstance(value, np.generic) else value


def _figure(png: bytes, alt: str, *, caption: str | None = None) -> str:
    """An embedded chart; a caption only where it says more than the chart's own title."""
    data = base64.b64encode(png).decode("ascii")
    below = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}">{below}</figure>'
