"""Descriptive figures of a training run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from model_training.data.cleaning import clean_transactions
from model_training.data.exploration import OTHER_COUNTRIES, WEEKDAYS, Exploration, explore
from model_training.data.rfm import RFM_COLUMNS, compute_rfm

Builder = Callable[[Any], pd.DataFrame]


def run(frame: pd.DataFrame) -> Exploration:
    clean = clean_transactions(frame)
    rfm = compute_rfm(clean, datetime(2012, 1, 1))
    return explore(frame, clean, rfm, rfm[rfm["frequency"] < 3])


@pytest.fixture
def small(make_frame: Builder) -> pd.DataFrame:
    return make_frame(
        [
            # Monday 2011-01-03, two lines, one minute apart: one order at 09:59.
            ("1", "10A", "ITEM", 2, "2011-01-03 09:59:00", 5.0, "1", "France"),
            ("1", "20B", "ITEM", 1, "2011-01-03 10:00:00", 1.0, "1", "France"),
            # Return in March, net of the revenue of that month and country.
            ("C2", "10A", "ITEM", -1, "2011-03-10 14:00:00", 5.0, "1", "France"),
            # Thursday 2011-03-10: an anonymous order counts as an order but not as revenue.
            ("3", "10A", "ITEM", 1, "2011-03-10 15:30:00", 5.0, None, "United Kingdom"),
            ("4", "10A", "ITEM", 10, "2011-03-10 15:45:00", 1.0, "2", "United Kingdom"),
            ("5", "10A", "ITEM", 10, "2011-03-11 15:45:00", 1.0, "2", "United Kingdom"),
            ("6", "10A", "ITEM", 10, "2011-03-12 15:45:00", 1.0, "2", "United Kingdom"),
        ]
    )


def test_revenue_by_country_is_net_of_returns(small: pd.DataFrame) -> None:
    revenue = run(small).revenue_by_country
    assert revenue.to_dict() == {"United Kingdom": 30.0, "France": 6.0}
    assert revenue.index.name == "country"


def test_revenue_by_month_has_every_month(small: pd.DataFrame) -> None:
    revenue = run(small).revenue_by_month
    assert [str(p) for p in revenue.index] == ["2011-01", "2011-02", "2011-03"]
    assert revenue.tolist() == [11.0, 0.0, 25.0]


def test_orders_by_weekday_and_hour_count_distinct_purchase_invoices(small: pd.DataFrame) -> None:
    exploration = run(small)
    weekday = exploration.orders_by_weekday
    assert tuple(weekday.index) == WEEKDAYS
    assert weekday.to_dict() == {
        "Monday": 1,
        "Tuesday": 0,
        "Wednesday": 0,
        "Thursday": 2,
        "Friday": 1,
        "Saturday": 1,
        "Sunday": 0,
    }
    hour = exploration.orders_by_hour
    assert hour.to_dict() == {9: 1, 10: 0, 11: 0, 12: 0, 13: 0, 14: 0, 15: 4}


def test_rfm_before_and_after_trimming(small: pd.DataFrame) -> None:
    exploration = run(small)
    assert list(exploration.rfm_before.columns) == RFM_COLUMNS
    assert exploration.rfm_before.loc["count"].tolist() == [2.0, 2.0, 2.0]
    assert exploration.rfm_after.loc["count"].tolist() == [1.0, 1.0, 1.0]
    assert exploration.rfm_values_before.index.tolist() == ["1", "2"]
    assert exploration.rfm_values_after.index.tolist() == ["1"]
    assert exploration.rfm_values_after["monetary"].tolist() == [6.0]


def test_top_ten_countries_then_other(make_frame: Builder) -> None:
    rows = [
        (str(i), "10A", "ITEM", 1, "2011-01-03 10:00:00", float(100 - i), "1", f"Country {i:02d}")
        for i in range(13)
    ]
    revenue = run(make_frame(rows)).revenue_by_country
    assert len(revenue) == 11
    assert revenue.index[0] == "Country 00"
    assert revenue.index[-1] == OTHER_COUNTRIES
    assert revenue[OTHER_COUNTRIES] == 90.0 + 89.0 + 88.0
    assert revenue.sum() == sum(100 - i for i in range(13))


def test_nothing_to_explore(make_frame: Builder) -> None:
    exploration = run(make_frame([]))
    assert exploration.revenue_by_country.empty
    assert exploration.revenue_by_month.empty
    assert exploration.orders_by_weekday.sum() == 0
    assert exploration.orders_by_hour.empty
