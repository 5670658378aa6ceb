"""Each cleaning rule, counted on small hand-made frames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from model_training.data.cleaning import CLEANING_RULES, clean_transactions

Builder = Callable[[Any], pd.DataFrame]
T = "2011-01-10 10:00:00"
GOOD = ("540001", "85123A", "WHITE HEART", 6, T, 2.55, "17850.0", "United Kingdom")


def counts_for(make_frame: Builder, *rows: tuple[object, ...]) -> dict[str, int]:
    clean = clean_transactions(make_frame([GOOD, *rows]))
    assert clean.rows_in == len(rows) + 1
    assert clean.rows_out + sum(clean.counts.values()) == clean.rows_in
    assert list(clean.counts) == list(CLEANING_RULES)
    return {rule: count for rule, count in clean.counts.items() if count}


def test_a_good_line_is_kept(make_frame: Builder) -> None:
    clean = clean_transactions(make_frame([GOOD]))
    assert clean.rows_out == 1
    line = clean.lines.iloc[0]
    assert (line["is_return"], line["units"], line["value"]) == (False, 6, pytest.approx(15.3))


def test_missing_customer_or_description(make_frame: Builder) -> None:
    no_customer = (*GOOD[:6], None, GOOD[7])
    no_description = (GOOD[0], GOOD[1], None, *GOOD[3:])
    assert counts_for(make_frame, no_customer, no_description) == {
        "missing_customer_or_description": 2
    }


def test_exact_duplicates_only(make_frame: Builder) -> None:
    other_quantity = (*GOOD[:3], 7, *GOOD[4:])
    assert counts_for(make_frame, GOOD, GOOD, other_quantity) == {"duplicate_lines": 2}


def test_duplicates_counted_after_unattributable_lines(make_frame: Builder) -> None:
    anonymous = (*GOOD[:6], None, GOOD[7])
    assert counts_for(make_frame, anonymous, anonymous) == {"missing_customer_or_description": 2}


@pytest.mark.parametrize(
    "sku", ["POST", "D", "M", "BANK CHARGES", "DOT", "C2", "CRUK", "PADS", "AMAZONFEE", "post"]
)
def test_non_product_codes(make_frame: Builder, sku: str) -> None:
    row = (GOOD[0], sku, "FEE", 1, T, 18.0, GOOD[6], GOOD[7])
    assert counts_for(make_frame, row) == {"non_product": 1}


@pytest.mark.parametrize("sku", ["85123A", "22423", "15056BL", "79323W"])
def test_product_codes_begin_with_a_digit(make_frame: Builder, sku: str) -> None:
    assert counts_for(make_frame, (GOOD[0], sku, "ITEM", 1, T, 2.0, GOOD[6], GOOD[7])) == {}


def test_zero_and_negative_price(make_frame: Builder) -> None:
    free = (*GOOD[:5], 0.0, *GOOD[6:])
    negative = ("A563185", "85123B", "ADJUST BAD DEBT", 1, T, -11062.06, "17850.0", "UK")
    assert counts_for(make_frame, free, negative) == {"zero_price": 2}


def test_inconsistent_quantity(make_frame: Builder) -> None:
    purchase_negative = ("540002", *GOOD[1:3], -2, *GOOD[4:])
    purchase_zero = ("540003", *GOOD[1:3], 0, *GOOD[4:])
    return_positive = ("C540004", *GOOD[1:3], 2, *GOOD[4:])
    return_ok = ("C540005", *GOOD[1:3], -2, *GOOD[4:])
    counts = counts_for(make_frame, purchase_negative, purchase_zero, return_positive, return_ok)
    assert counts == {"inconsistent_quantity": 3}


def test_return_lines_are_positive_units(make_frame: Builder) -> None:
    clean = clean_transactions(make_frame([("C540005", *GOOD[1:3], -4, *GOOD[4:])]))
    line = clean.lines.iloc[0]
    assert (line["is_return"], line["units"], line["value"]) == (True, 4, pytest.approx(10.2))


def test_each_line_counted_once_by_the_first_rule_that_removes_it(make_frame: Builder) -> None:
    # Anonymous, non-product and free at once: only the first rule counts it.
    everything_wrong = ("540009", "POST", "POSTAGE", -1, T, 0.0, None, "France")
    assert counts_for(make_frame, everything_wrong) == {"missing_customer_or_description": 1}


def test_empty_frame(make_frame: Builder) -> None:
    clean = clean_transactions(make_frame([]))
    assert clean.rows_out == 0
    assert clean.counts == dict.fromkeys(CLEANING_RULES, 0)
    assert {"is_return", "units", "value"} <= set(clean.lines.columns)
