"""Descriptive figures of the transactions and of the RFM table, for the training report.

Pure and vectorised: frames in, a frozen :class:`Exploration` of frames and series out. The
report draws them; nothing here touches matplotlib or the filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from model_training.data.cleaning import CleanLines
from model_training.data.rfm import RFM_COLUMNS
from model_training.data.rules import RETURN_PREFIX

__all__ = [
    "OTHER_COUNTRIES",
    "TOP_COUNTRIES",
    "WEEKDAYS",
    "Exploration",
    "PartialMonth",
    "explore",
    "partial_months",
]

TOP_COUNTRIES = 10
#: Label of the row that sums every country outside the top ones.
OTHER_COUNTRIES = "Other"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Exploration:
    """What the data looks like before and after cleaning and trimming.

    Attributes
    ----------
    revenue_by_country
        Net revenue (clean purchase lines minus clean return lines) of the top countries,
        largest first, then one ``Other`` row for the rest (only if there is a rest).
    revenue_by_month
        Net revenue per calendar month (``PeriodIndex``, every month of the span present).
    orders_by_weekday
        Distinct purchase invoices (anonymous ones included) per weekday, Monday to Sunday.
    orders_by_hour
        Distinct purchase invoices per hour of the day, every hour from the first to the last
        one seen.
    rfm_before, rfm_after
        ``describe()`` of the RFM columns of all customers and of the customers kept for
        fitting.
    rfm_values_before, rfm_values_after
        The raw RFM columns themselves, for histograms.
    first_line, last_line
        Time of the first and the last clean line (``None`` without lines): the span the
        revenue figures cover.
    """

    revenue_by_country: pd.Series
    revenue_by_month: pd.Series
    orders_by_weekday: pd.Series
    orders_by_hour: pd.Series
    rfm_before: pd.DataFrame
    rfm_after: pd.DataFrame
    rfm_values_before: pd.DataFrame
    rfm_values_after: pd.DataFrame
    first_line: pd.Timestamp | None = None
    last_line: pd.Timestamp | None = None


@dataclass(frozen=True)
class PartialMonth:
    """A calendar month the data cover only in part.

    Attributes
    ----------
    month
        The month.
    first_day, last_day
        First and last day of the month with data in the span (1-based days of the month).
    days
        Days in the month.
    """

    month: pd.Period
    first_day: int
    last_day: int
    days: int


def partial_months(first: pd.Timestamp | None, last: pd.Timestamp | None) -> list[PartialMonth]:
    """The first and last month of a span when the span does not cover them whole.

    Parameters
    ----------
    first, last
        Times of the first and the last line (``None``: no data, no month).

    Returns
    -------
    list of PartialMonth
        At most two, first month first.

    Examples
    --------
    >>> [(str(p.month), p.first_day, p.last_day, p.days) for p in partial_months(
    ...     pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2011-12-09 12:50"))]
    [('2011-12', 1, 9, 31)]
    """
    if first is None or last is None:
        return []
    out: list[PartialMonth] = []
    start, end = first.to_period("M"), last.to_period("M")
    if start == end:
        whole = first.day == 1 and last.day == start.days_in_month
        return [] if whole else [PartialMonth(start, first.day, last.day, start.days_in_month)]
    if first.day != 1:
        out.append(PartialMonth(start, first.day, start.days_in_month, start.days_in_month))
    if last.day != end.days_in_month:
        out.append(PartialMonth(end, 1, last.day, end.days_in_month))
    return out


def explore(
    frame: pd.DataFrame, clean: CleanLines, rfm: pd.DataFrame, trimmed: pd.DataFrame
) -> Exploration:
    """Compute the descriptive figures of a training run.

    Parameters
    ----------
    frame
        The loaded raw lines (:func:`~model_training.loading.load_transactions`): orders are
        counted here, so anonymous orders count as shop activity.
    clean
        The cleaned lines (:func:`~model_training.cleaning.clean_transactions`): revenue is
        summed here, so it matches what RFM counts.
    rfm
        :func:`~model_training.rfm.compute_rfm` output for every customer.
    trimmed
        The subset of ``rfm`` used to fit the model.

    Returns
    -------
    Exploration
        The figures; see its attributes.
    """
    lines = clean.lines
    signed = pd.Series(
        np.where(lines["is_return"].to_numpy(dtype=bool), -1.0, 1.0)
        * lines["value"].to_numpy(dtype=float),
        index=lines.index,
        dtype="float64",
    )
    return Exploration(
        revenue_by_country=_revenue_by_country(signed, lines["country"]),
        revenue_by_month=_revenue_by_month(signed, lines["invoiced_at"]),
        orders_by_weekday=_orders_by(frame, "weekday"),
        orders_by_hour=_orders_by(frame, "hour"),
        rfm_before=rfm[RFM_COLUMNS].describe(),
        rfm_after=trimmed[RFM_COLUMNS].describe(),
        rfm_values_before=rfm[RFM_COLUMNS].copy(),
        rfm_values_after=trimmed[RFM_COLUMNS].copy(),
        first_line=None if lines.empty else pd.Timestamp(lines["invoiced_at"].min()),
        last_line=None if lines.empty else pd.Timestamp(lines["invoiced_at"].max()),
    )


def _revenue_by_country(signed: pd.Series, country: pd.Series) -> pd.Series:
    by_country = (
        signed.groupby(country.fillna("Unspecified").to_numpy())
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    top = by_country.iloc[:TOP_COUNTRIES]
    rest = by_country.iloc[TOP_COUNTRIES:]
    if not rest.empty:
        top = pd.concat([top, pd.Series({OTHER_COUNTRIES: float(rest.sum())})])
    top.index.name = "country"
    return top.rename("revenue")


def _revenue_by_month(signed: pd.Series, invoiced_at: pd.Series) -> pd.Series:
    if signed.empty:
        return pd.Series(
            [], index=pd.PeriodIndex([], freq="M", name="month"), dtype="float64", name="revenue"
        )
    months = pd.PeriodIndex(invoiced_at, freq="M")
    by_month = signed.groupby(months).sum()
    span = pd.period_range(by_month.index.min(), by_month.index.max(), freq="M", name="month")
    return by_month.reindex(span, fill_value=0.0).rename("revenue")


def _orders_by(frame: pd.DataFrame, unit: str) -> pd.Series:
    """Distinct purchase invoices per weekday or hour; an invoice's time is its first line's."""
    purchases = frame[~frame["invoice"].str.startswith(RETURN_PREFIX).fillna(False).astype(bool)]
    started = purchases.groupby("invoice", observed=True)["invoiced_at"].min()
    if unit == "weekday":
        counts = started.dt.day_of_week.value_counts()
        index = pd.Index(range(7))
        result = counts.reindex(index, fill_value=0)
        result.index = pd.Index(WEEKDAYS, name="weekday")
    else:
        counts = started.dt.hour.value_counts()
        hours = range(int(counts.index.min()), int(counts.index.max()) + 1) if len(counts) else []
        result = counts.reindex(pd.Index(hours, name="hour"), fill_value=0)
    orders: pd.Series = result.astype("int64").rename("orders")
    return orders
