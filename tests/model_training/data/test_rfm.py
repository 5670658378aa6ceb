"""RFM semantics (docs/design.md) on hand-made lines, as properties, and on the UCI data."""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_training.data.cleaning import clean_transactions
from model_training.data.loading import load_transactions
from model_training.data.rfm import RFM_COLUMNS, compute_rfm, default_reference_time

Builder = Callable[[Any], pd.DataFrame]
T_REF = datetime(2011, 12, 10)
UK = "United Kingdom"


def line(
    invoice: str,
    sku: str,
    quantity: int,
    price: float,
    when: str = "2011-12-01 10:00:00",
    customer: str | None = "1",
    country: str = UK,
) -> tuple[object, ...]:
    return (invoice, sku, f"ITEM {sku}", quantity, when, price, customer, country)


def rfm_of(make_frame: Builder, *rows: tuple[object, ...], t_ref: datetime = T_REF) -> pd.DataFrame:
    return compute_rfm(clean_transactions(make_frame(list(rows))), t_ref)


def test_one_purchase(make_frame: Builder) -> None:
    rfm = rfm_of(make_frame, line("1", "10A", 10, 2.0), line("1", "20B", 1, 0.5))
    assert list(rfm.columns) == [*RFM_COLUMNS, "first_purchase", "last_purchase", "country"]
    assert rfm.index.tolist() == ["1"]
    row = rfm.loc["1"]
    assert (row["recency_days"], row["frequency"], row["monetary"]) == (8, 1, 20.5)
    assert row["first_purchase"] == row["last_purchase"] == pd.Timestamp("2011-12-01 10:00")


def test_returns_are_matched_per_stock_code_at_the_returns_mean_price(make_frame: Builder) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 3, 2.0),
        line("C2", "10A", -2, 3.0),
        line("C3", "10A", -2, 1.0),  # 4 returned at a mean of 2.0, 3 of them matched
        line("C3", "20B", -5, 9.0),  # never bought in the window: ignored
    )
    assert rfm.loc["1", "monetary"] == pytest.approx(6.0 - 3 * 2.0)
    assert rfm.loc["1", "frequency"] == 1  # returns are not purchases


def test_returning_more_than_bought_counts_only_what_was_bought(make_frame: Builder) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 10, 2.0),
        line("2", "20B", 1, 5.0),
        line("C3", "10A", -15, 2.0),
    )
    assert rfm.loc["1", "monetary"] == pytest.approx(5.0)


def test_returns_before_purchases_still_match(make_frame: Builder) -> None:
    rfm = rfm_of(
        make_frame,
        line("C1", "10A", -4, 2.0, when="2011-01-05 09:00:00"),
        line("2", "10A", 10, 2.0, when="2011-03-01 09:00:00"),
    )
    assert rfm.loc["1", "monetary"] == pytest.approx(12.0)
    assert rfm.loc["1", "last_purchase"] == pd.Timestamp("2011-03-01 09:00")


def test_duplicate_lines_count_once(make_frame: Builder) -> None:
    purchase = line("1", "10A", 10, 2.0)
    refund = line("C2", "10A", -1, 2.0)
    rfm = rfm_of(make_frame, purchase, purchase, refund, refund)
    assert (rfm.loc["1", "frequency"], rfm.loc["1", "monetary"]) == (1, pytest.approx(18.0))


def test_customer_with_only_returns_or_invalid_lines_has_no_row(make_frame: Builder) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 1, 2.0, customer="buyer"),
        line("C2", "10A", -1, 2.0, customer="returner"),
        line("3", "POST", 1, 18.0, customer="postage"),
        line("4", "10A", 1, 0.0, customer="free"),
    )
    assert rfm.index.tolist() == ["buyer"]


def test_nobody_at_all(make_frame: Builder) -> None:
    rfm = rfm_of(make_frame, line("C2", "10A", -1, 2.0))
    assert rfm.empty
    assert list(rfm.columns)[:3] == RFM_COLUMNS


@pytest.mark.parametrize(
    ("last", "days"),
    [
        ("2011-12-09 23:59:00", 0),
        ("2011-12-09 00:00:00", 1),  # exactly one day
        ("2011-12-08 23:59:00", 1),  # 1.0007 days: floor
        ("2011-12-08 00:01:00", 1),  # 1.999 days: floor
        ("2010-12-10 00:00:00", 365),
    ],
)
def test_recency_is_the_floor_of_whole_days(make_frame: Builder, last: str, days: int) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 1, 1.0, when="2010-12-01 08:00:00"),
        line("2", "10A", 1, 1.0, when=last),
    )
    assert rfm.loc["1", "recency_days"] == days


def test_an_invoice_spanning_two_minutes_is_one_order_at_its_first_minute(
    make_frame: Builder,
) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 1, 1.0, when="2011-12-08 23:59:00"),
        line("1", "20B", 1, 1.0, when="2011-12-09 00:00:00"),
    )
    row = rfm.loc["1"]
    assert (row["frequency"], row["recency_days"]) == (1, 1)
    assert row["last_purchase"] == pd.Timestamp("2011-12-08 23:59")


def test_country_is_the_country_of_the_last_purchase(make_frame: Builder) -> None:
    rfm = rfm_of(
        make_frame,
        line("1", "10A", 1, 1.0, when="2011-05-01 10:00:00", country="France"),
        line("3", "10A", 1, 1.0, when="2011-07-01 10:00:00", country="Germany"),
        line("2", "10A", 1, 1.0, when="2011-06-01 10:00:00", country="EIRE"),
        line("C4", "10A", -1, 1.0, when="2011-08-01 10:00:00", country="Spain"),
    )
    assert rfm.loc["1", "country"] == "Germany"
    assert rfm.loc["1", "first_purchase"] == pd.Timestamp("2011-05-01 10:00")
    assert rfm.loc["1", "frequency"] == 3


def test_default_reference_time_is_midnight_after_the_last_line(make_frame: Builder) -> None:
    frame = make_frame([line("1", "10A", 1, 1.0, when="2011-12-09 12:50:00")])
    assert default_reference_time(clean_transactions(frame), frame) == datetime(2011, 12, 10)


def test_an_earlier_t_ref_leaves_later_invoices_out(make_frame: Builder) -> None:
    t_ref = datetime(2011, 6, 1)
    frame = make_frame(
        [
            line("1", "10A", 2, 5.0, when="2011-05-01 10:00:00"),
            line("2", "10A", 1, 5.0, when="2011-06-01 00:00:00"),  # at t_ref: counts
            line("3", "10A", 4, 5.0, when="2011-06-01 00:01:00"),
            line("C4", "10A", -2, 5.0, when="2011-07-01 10:00:00"),  # a later return
            line("5", "20B", 1, 9.0, when="2011-07-01 10:00:00", customer="later"),
            # An invoice keyed in across t_ref is kept whole, at its first minute.
            line("6", "10A", 1, 1.0, when="2011-05-31 23:59:00", customer="split"),
            line("6", "20B", 1, 2.0, when="2011-06-01 00:01:00", customer="split"),
        ]
    )
    clean = clean_transactions(frame, t_ref=t_ref)
    assert clean.counts["after_t_ref"] == 3
    rfm = compute_rfm(clean, t_ref)
    assert rfm.index.tolist() == ["1", "split"]
    assert (rfm.loc["1", "recency_days"], rfm.loc["1", "frequency"]) == (0, 2)
    assert rfm.loc["1", "monetary"] == pytest.approx(15.0)
    assert (rfm.loc["split", "frequency"], rfm.loc["split", "monetary"]) == (1, pytest.approx(3.0))
    assert (rfm["recency_days"] >= 0).all()
    assert clean_transactions(frame).counts["after_t_ref"] == 0


# --- properties -------------------------------------------------------------------------------

CUSTOMERS = ("12346", "12347", "12348")
SKUS = ("10A", "20", "30", "POST")
PRICES = (0.0, 0.42, 1.25, 2.55, 7.95)


@st.composite
def transaction_rows(draw: st.DrawFn) -> list[tuple[object, ...]]:
    """Invoices of a few customers: each has one customer, one country and nearby times."""
    rows: list[tuple[object, ...]] = []
    for number in range(draw(st.integers(0, 8))):
        is_return = draw(st.booleans())
        invoice = f"{'C' if is_return else ''}{540_000 + number}"
        customer = draw(st.sampled_from((*CUSTOMERS, None)))
        country = draw(st.sampled_from((UK, "France", "EIRE")))
        day = draw(st.integers(1, 28))
        for _ in range(draw(st.integers(1, 4))):
            sku = draw(st.sampled_from(SKUS))
            quantity = draw(st.integers(1, 12)) * (-1 if is_return else 1)
            if draw(st.integers(0, 20)) == 0:
                quantity = -quantity  # the occasional sign error
            minute = draw(st.integers(0, 1))
            rows.append(
                (
                    invoice,
                    sku,
                    f"ITEM {sku}",
                    quantity,
                    f"2011-11-{day:02d} 10:0{minute}:00",
                    draw(st.sampled_from(PRICES)),
                    customer,
                    country,
                )
            )
        if rows and draw(st.booleans()):
            rows.append(rows[-1])  # a line keyed in twice
    return rows


def assert_same_rfm(left: pd.DataFrame, right: pd.DataFrame) -> None:
    # Sums in another order may differ in the last bits, never by a cent.
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows=transaction_rows(), data=st.data())
def test_shuffling_the_rows_gives_the_same_rfm(
    make_frame: Builder, rows: list[tuple[object, ...]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(rows))
    assert_same_rfm(rfm_of(make_frame, *rows), rfm_of(make_frame, *shuffled))


@settings(max_examples=60, deadline=None)
@given(rows=transaction_rows())
def test_duplicating_every_row_gives_the_same_rfm(
    make_frame: Builder, rows: list[tuple[object, ...]]
) -> None:
    assert_same_rfm(rfm_of(make_frame, *rows), rfm_of(make_frame, *rows, *rows))


# --- the UCI Online Retail data ---------------------------------------------------------------

UCI_T_REF = datetime(2011, 12, 10)


@pytest.fixture(scope="module")
def uci_rfm(uci_path: Path) -> pd.DataFrame:
    return compute_rfm(clean_transactions(load_transactions(uci_path)), UCI_T_REF)


@pytest.mark.uci
def test_uci_customers_and_reference_rows(uci_rfm: pd.DataFrame) -> None:
    assert len(uci_rfm) == 4_334
    expected = {"12346": (325, 1, 0.00), "12347": (2, 7, 4310.00), "12348": (75, 4, 1437.24)}
    for customer, (recency, frequency, monetary) in expected.items():
        row = uci_rfm.loc[customer]
        assert (row["recency_days"], row["frequency"]) == (recency, frequency), customer
        assert round(row["monetary"], 2) == pytest.approx(monetary, abs=1e-9), customer


def independent_rfm(path: Path, t_ref: datetime) -> dict[str, tuple[int, int, float, str]]:
    """docs/design.md's RFM written out plainly over the file's rows: no pandas, no project code.

    Rows of invoices dated after ``t_ref`` (by the earliest time among the invoice's
    attributable rows) are skipped. Returns ``customer -> (recency_days, frequency, monetary,
    country)``.
    """
    non_product = re.compile(r"[A-Za-z].*")  # codes beginning with a letter
    times: dict[str, datetime] = {}
    seen: set[tuple[object, ...]] = set()
    rows: list[tuple[str, str, int, datetime, float, str, str]] = []
    invoice_first: dict[str, datetime] = {}
    invoice_time: dict[tuple[str, str], datetime] = {}
    invoice_country: dict[tuple[str, str], str] = {}
    spent: dict[str, float] = defaultdict(float)
    bought: dict[tuple[str, str], int] = defaultdict(int)
    returned: dict[tuple[str, str], int] = defaultdict(int)
    returned_value: dict[tuple[str, str], float] = defaultdict(float)
    with gzip.open(path, "rb") as handle:
        reader = csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
        next(reader)
        for cells in reader:
            invoice, sku, description, quantity_text, when, price_text, customer, country = (
                cell.strip() for cell in cells
            )
            customer = customer.removesuffix(".0")
            if not customer or not description:
                continue
            quantity, price = int(quantity_text), float(price_text)
            key = (invoice, sku, description, quantity, when, price, customer, country)
            if key in seen:
                continue
            seen.add(key)
            if when not in times:
                times[when] = datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
            moment = times[when]
            if invoice not in invoice_first or moment < invoice_first[invoice]:
                invoice_first[invoice] = moment
            rows.append((invoice, sku, quantity, moment, price, customer, country))
    for invoice, sku, quantity, moment, price, customer, country in rows:
        if invoice_first[invoice] > t_ref:
            continue
        if non_product.fullmatch(sku) or price <= 0:
            continue
        is_return = invoice.startswith("C")
        if (quantity >= 0) if is_return else (quantity <= 0):
            continue
        item = (customer, sku)
        if is_return:
            returned[item] += -quantity
            returned_value[item] += -quantity * price
            continue
        bought[item] += quantity
        spent[customer] += quantity * price
        order = (customer, invoice)
        if order not in invoice_time or moment < invoice_time[order]:
            invoice_time[order] = moment
        invoice_country.setdefault(order, country)
    matched: dict[str, float] = defaultdict(float)
    for item, units in returned.items():
        matched[item[0]] += min(units, bought.get(item, 0)) * returned_value[item] / units
    latest: dict[str, tuple[datetime, str]] = {}
    frequency: dict[str, int] = defaultdict(int)
    for (customer, invoice), when_bought in invoice_time.items():
        frequency[customer] += 1
        if customer not in latest or (when_bought, invoice) > latest[customer]:
            latest[customer] = (when_bought, invoice)
    result = {}
    for customer, (last, invoice) in latest.items():
        days = math.floor((t_ref - last).total_seconds() / 86_400)
        monetary = spent[customer] - matched.get(customer, 0.0)
        result[customer] = (
            days,
            frequency[customer],
            monetary,
            invoice_country[(customer, invoice)],
        )
    return result


def assert_agrees(expected: dict[str, tuple[int, int, float, str]], rfm: pd.DataFrame) -> None:
    assert set(expected) == set(rfm.index)
    got = {
        customer: (int(r), int(f), float(m), str(c))
        for customer, r, f, m, c in rfm[[*RFM_COLUMNS, "country"]].itertuples()
    }
    wrong = [
        (customer, expected[customer], got[customer])
        for customer in expected
        if expected[customer][:2] != got[customer][:2]
        or abs(expected[customer][2] - got[customer][2]) > 0.01
        or expected[customer][3] != got[customer][3]
    ]
    assert not wrong, f"{len(wrong)} customers differ, e.g. {wrong[:5]}"


@pytest.mark.uci
def test_uci_agrees_with_an_independent_computation(uci_path: Path, uci_rfm: pd.DataFrame) -> None:
    assert_agrees(independent_rfm(uci_path, UCI_T_REF), uci_rfm)


@pytest.mark.uci
def test_uci_as_of_an_earlier_t_ref_knows_only_the_orders_until_then(uci_path: Path) -> None:
    t_ref = datetime(2011, 6, 1)
    clean = clean_transactions(load_transactions(uci_path), t_ref=t_ref)
    rfm = compute_rfm(clean, t_ref)
    assert clean.counts["after_t_ref"] > 0
    assert (rfm["recency_days"] >= 0).all()
    assert (rfm["last_purchase"] <= pd.Timestamp(t_ref)).all()
    assert_agrees(independent_rfm(uci_path, t_ref), rfm)


@pytest.mark.uci
def test_uci_in_the_other_public_format_gives_the_same_rfm(
    uci_path: Path, uci_rfm: pd.DataFrame, tmp_path: Path
) -> None:
    raw = pd.read_csv(uci_path, dtype=str, keep_default_na=False)
    when = pd.to_datetime(raw["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    raw["InvoiceDate"] = (
        when.dt.month.astype(str)
        + "/"
        + when.dt.day.astype(str)
        + "/"
        + when.dt.year.astype(str)
        + " "
        + when.dt.hour.astype(str)
        + ":"
        + when.dt.strftime("%M")
    )
    raw["CustomerID"] = raw["CustomerID"].str.removesuffix(".0")
    path = tmp_path / "Online Retail.csv"
    raw.to_csv(path, index=False, encoding="iso-8859-1")
    assert "12/1/2010 8:26" in path.read_text(encoding="iso-8859-1")[:400]
    rewritten = compute_rfm(clean_transactions(load_transactions(path)), UCI_T_REF)
    assert_same_rfm(rewritten, uci_rfm)
