"""The training report's charts, each drawn to PNG bytes.

Plots are drawn with matplotlib's Agg canvas (no pyplot, so no global backend or figure state).
``$`` is escaped in plot labels so that matplotlib never reads a segment name as mathtext.
Every chart copes with empty input (it then says "no data").
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.projections.polar import PolarAxes
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

__all__ = [
    "RFM_LABELS",
    "plot_countries",
    "plot_months",
    "plot_orders",
    "plot_radar",
    "plot_rfm",
    "plot_rfm_space",
    "plot_silhouette",
    "plot_sizes",
    "segment_colours",
]

_RFM = ("recency_days", "frequency", "monetary")
#: Axis and column labels of the RFM features.
RFM_LABELS = {"recency_days": "Recency (days)", "frequency": "Frequency (orders)",
              "monetary": "Monetary (£)"}  # fmt: skip
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
_BAR = "#4c72b0"
_PARTIAL = "#b8c7e0"
_DPI = 100
# Scatter plots beyond this many points are sampled: the picture does not change, the PNG
# and the rendering time do.
_MAX_SCATTER_POINTS = 20_000


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _label(text: object) -> str:
    # A ``$`` pair would turn a label into mathtext (or fail to parse).
    return str(text).replace("$", r"\$")


def _empty(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _money(value: float, _position: object = None) -> str:
    for limit, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"£{value / limit:,.3g}{suffix}"
    return f"£{value:,.0f}"


def _style(axes: Axes, grid: Literal["x", "y"] = "y") -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis=grid, alpha=0.3)
    axes.set_axisbelow(True)


def plot_countries(revenue: pd.Series) -> bytes:
    figure = _new_figure(5.4, 3.8)
    axes = figure.subplots()
    if revenue.empty:
        _empty(axes)
        return _png(figure)
    labels = [_label(c) for c in revenue.index][::-1]
    values = revenue.to_numpy(dtype=float)[::-1]
    # A linear axis shows how much the home country dominates; the labels give the small ones.
    bars = axes.barh(labels, values, color=_BAR)
    axes.bar_label(bars, labels=[_money(v) for v in values], fontsize=7, padding=2)
    axes.xaxis.set_major_formatter(FuncFormatter(_money))
    axes.xaxis.set_major_locator(MaxNLocator(4))
    axes.tick_params(axis="y", labelsize=8)
    axes.margins(x=0.18)
    _style(axes, grid="x")
    axes.set_title("Net revenue by country")
    return _png(figure)


def plot_months(revenue: pd.Series, partial: Collection[pd.Period] = ()) -> bytes:
    """Revenue per month; the ``partial`` months (covered only in part) are drawn pale."""
    figure = _new_figure(5.4, 3.8)
    axes = figure.subplots()
    if revenue.empty:
        _empty(axes)
        return _png(figure)
    labels = [pd.Period(p).strftime("%b %y") if isinstance(p, pd.Period) else str(p)
              for p in revenue.index]  # fmt: skip
    is_partial = [p in partial for p in revenue.index]
    colours = [_PARTIAL if flag else _BAR for flag in is_partial]
    axes.bar(labels, revenue.to_numpy(dtype=float), color=colours, edgecolor=_BAR)
    if any(is_partial):
        axes.legend(handles=[Patch(facecolor=_PARTIAL, edgecolor=_BAR, label="partial month")],
                    fontsize=8, frameon=False, loc="upper left")  # fmt: skip
    axes.yaxis.set_major_formatter(FuncFormatter(_money))
    axes.tick_params(axis="x", labelrotation=60, labelsize=8)
    _style(axes)
    axes.set_title("Net revenue by month")
    return _png(figure)


def plot_orders(weekday: pd.Series, hour: pd.Series) -> bytes:
    figure = _new_figure(10.8, 3.2)
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.6])
    for axes, series, title in ((left, weekday, "by weekday"), (right, hour, "by hour")):
        if series.empty:
            _empty(axes)
            continue
        labels = [str(i)[:3] for i in series.index] if series is weekday else [
            f"{int(i):02d}h" for i in series.index]  # fmt: skip
        axes.bar(labels, series.to_numpy(dtype=float), color=_BAR)
        _count_axis(axes.yaxis)
        axes.tick_params(axis="x", labelsize=8)
        _style(axes)
        axes.set_title(f"Orders {title}")
    return _png(figure)


def plot_rfm(before: pd.DataFrame, after: pd.DataFrame) -> bytes:
    figure = _new_figure(10.8, 5.2)
    grid = figure.subplots(2, 3)
    for row, (frame, name) in enumerate(((before, "all"), (after, "fitted"))):
        for column, feature in enumerate(_RFM):
            axes = grid[row][column]
            values = frame[feature].to_numpy(dtype=float) if feature in frame else np.array([])
            values = values[np.isfinite(values)]
            if values.size == 0:
                _empty(axes)
                continue
            axes.hist(values, bins=_bins(values, feature), color=_BAR if row == 0 else "#55a868")
            if feature != "recency_days":
                # Heavy tails: a log count axis keeps the rare big customers visible.
                axes.set_yscale("log")
                axes.yaxis.set_major_formatter(FuncFormatter(_count))
                axes.yaxis.set_minor_formatter(NullFormatter())
            else:
                _count_axis(axes.yaxis)
            if feature == "frequency":
                axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            if feature == "monetary":
                axes.xaxis.set_major_formatter(FuncFormatter(_money))
            axes.tick_params(axis="both", labelsize=8)
            _style(axes)
            axes.set_title(f"{RFM_LABELS[feature]}: {name} (n={values.size:,})", fontsize=9)
    return _png(figure)


def _bins(values: np.ndarray, feature: str) -> int | np.ndarray:
    """One bin per order count when that is few bins (no gaps between integer values)."""
    if feature == "frequency":
        low, high = math.floor(values.min()), math.ceil(values.max())
        if high - low <= 60:
            return np.arange(low, high + 2) - 0.5
    return 40


def _count(value: float, _position: object = None) -> str:
    return f"{value:,.0f}"


def _count_axis(axis: Axis) -> None:
    """Integer ticks with thousands separators, for an axis of counts."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(_count))


def plot_silhouette(comparison: pd.DataFrame) -> bytes:
    figure = _new_figure(6.4, 3.6)
    axes = figure.subplots()
    if comparison.empty:
        _empty(axes)
        return _png(figure)
    for number, (method, rows) in enumerate(comparison.groupby("method", sort=True)):
        rows = rows.sort_values("k")
        colour = _PALETTE[number % len(_PALETTE)]
        axes.plot(rows["k"], rows["silhouette"], marker="o", color=colour, label=_label(method))
        picked = rows[rows["chosen"].fillna(False).astype(bool)]
        if not picked.empty:
            axes.scatter(
                picked["k"],
                picked["silhouette"],
                s=260,
                marker="*",
                color=colour,
                edgecolor="black",
                zorder=3,
                label=_label(f"chosen: {method}"),
            )
    axes.set_xlabel("k (number of clusters)")
    axes.set_ylabel("silhouette")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    _style(axes)
    axes.legend(fontsize=8, frameon=False)
    axes.set_title("Silhouette vs k")
    return _png(figure)


def segment_colours(segments: pd.DataFrame, customers: pd.DataFrame) -> dict[str, str]:
    """One colour per segment, in the order of the segment table, then any other seen."""
    names = [str(n) for n in segments.get("name", pd.Series(dtype=str))]
    if "segment" in customers:
        names += sorted({str(s) for s in customers["segment"].unique()} - set(names))
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def plot_rfm_space(customers: pd.DataFrame, colours: Mapping[str, str]) -> bytes:
    """Every customer by recency against frequency and against spend, coloured by segment.

    ``customers`` has columns ``recency_days``, ``frequency``, ``monetary`` and ``segment``.
    Frequency is jittered within its integer (so that customers with the same count do not
    hide each other) and drawn on a log axis, like spend (shown from £1).
    """
    figure = _new_figure(10.8, 4.4)
    left, right = figure.subplots(1, 2, sharex=True)
    if customers.empty:
        _empty(left)
        _empty(right)
        return _png(figure)
    points = customers
    if len(points) > _MAX_SCATTER_POINTS:
        points = points.sample(_MAX_SCATTER_POINTS, random_state=0)
    rng = np.random.default_rng(0)
    recency = points["recency_days"].to_numpy(dtype=float)
    frequency = points["frequency"].to_numpy(dtype=float)
    frequency = frequency * np.exp(rng.uniform(-0.15, 0.15, frequency.size))
    monetary = np.clip(points["monetary"].to_numpy(dtype=float), 1.0, None)
    segment = points["segment"].astype(str).to_numpy()
    for name, colour in colours.items():
        mask = segment == name
        if not mask.any():
            continue
        for axes, values in ((left, frequency), (right, monetary)):
            axes.scatter(recency[mask], values[mask], s=6, alpha=0.5, color=colour,
                         label=_label(name), linewidths=0)  # fmt: skip
    for axes in (left, right):
        axes.set_yscale("log")
        axes.set_xlabel("Recency: days since the last order")
        axes.yaxis.set_minor_formatter(NullFormatter())
        _style(axes)
    top = max(float(points["frequency"].max()), 1.0)
    left.yaxis.set_major_locator(FixedLocator([t for t in _LOG_TICKS if t <= top * 1.5]))
    left.yaxis.set_major_formatter(FuncFormatter(_count))
    left.set_ylabel("Frequency: orders (log scale)")
    left.set_title("Recency and frequency")
    right.yaxis.set_major_formatter(FuncFormatter(_money))
    right.set_ylabel("Monetary: net spend, £ (log scale)")
    right.set_title("Recency and spend")
    right.legend(fontsize=8, markerscale=2.5, frameon=False, loc="upper left",
                 bbox_to_anchor=(1.02, 1.0))  # fmt: skip
    return _png(figure)


_LOG_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000)


def _radar_scores(segments: pd.DataFrame) -> np.ndarray:
    """R, F, M of each segment scaled to [0.1, 1] across segments, higher = better.

    Recency is negated (recent is good); frequency and monetary are log-scaled first, so one
    segment of wholesalers does not flatten every other profile.
    """
    raw = np.column_stack(
        [
            -segments["recency_days"].to_numpy(dtype=float),
            np.log1p(np.clip(segments["frequency"].to_numpy(dtype=float), 0, None)),
            np.log1p(np.clip(segments["monetary"].to_numpy(dtype=float), 0, None)),
        ]
    )
    low, high = raw.min(axis=0), raw.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.where(high > low, (raw - low) / span, 0.5)
    return 0.1 + 0.9 * scaled


def plot_radar(segments: pd.DataFrame, colours: Mapping[str, str]) -> bytes:
    figure = _new_figure(5.4, 4.6)
    if segments.empty:
        _empty(figure.subplots())
        return _png(figure)
    axes = figure.add_subplot(projection="polar")
    assert isinstance(axes, PolarAxes)  # for the type checker: projection="polar" gives one
    scores = _radar_scores(segments)
    angles = np.linspace(0, 2 * np.pi, len(_RFM), endpoint=False)
    closed = np.append(angles, angles[0])
    for name, values in zip(segments["name"].astype(str), scores, strict=True):
        colour = colours.get(name, _BAR)
        ring = np.append(values, values[0])
        axes.plot(closed, ring, color=colour, linewidth=1.8, label=_label(name))
        axes.fill(closed, ring, color=colour, alpha=0.08)
    axes.set_theta_offset(np.pi / 2)
    axes.set_xticks(angles, ["Recency (inverted)", "Frequency", "Monetary"], fontsize=9)
    axes.tick_params(axis="x", pad=8)
    # Anchor each axis label away from the circle, or the side ones get clipped.
    for text, angle in zip(axes.get_xticklabels(), angles + np.pi / 2, strict=True):
        side = math.cos(angle)
        text.set_horizontalalignment(
            "center" if abs(side) < 0.1 else "left" if side > 0 else "right"
        )
    axes.set_ylim(0, 1.05)
    axes.set_yticks([0.25, 0.5, 0.75, 1.0], [])
    axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.05, 1.0))
    axes.set_title("Segment profiles (outer = better)")
    return _png(figure)


def plot_sizes(segments: pd.DataFrame, colours: Mapping[str, str]) -> bytes:
    figure = _new_figure(5.4, 4.6)
    axes = figure.subplots()
    if segments.empty:
        _empty(axes)
        return _png(figure)
    names = segments["name"].astype(str).tolist()
    sizes = segments["size"].to_numpy(dtype=float)
    bars = axes.bar([_label(n) for n in names], sizes,
                    color=[colours.get(n, _BAR) for n in names])  # fmt: skip
    axes.bar_label(bars, labels=[f"{int(s):,}" for s in sizes], fontsize=8, padding=2)
    axes.tick_params(axis="x", labelsize=8, labelrotation=30 if len(names) > 4 else 0)
    _count_axis(axes.yaxis)
    axes.set_ylabel("customers")
    axes.margins(y=0.15)
    _style(axes)
    axes.set_title("Segment sizes")
    return _png(figure)
