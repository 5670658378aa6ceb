"""The synthetic data generator and the ``rfm synth`` command."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from model_training.cli.synth import synth
from model_training.data.cleaning import CLEANING_RULES, clean_transactions
from model_training.data.loading import SOURCE_COLUMNS, load_transactions
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.data.synth import generate_transactions, write_transactions
from model_training.data.synth_shop import END, START
from model_training.exceptions import InvalidInputError

CUSTOMERS = 300


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return generate_transactions(CUSTOMERS, seed=7)


@pytest.fixture(scope="module")
def loaded(synthetic: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("synth") / "lines.csv.gz"
    write_transactions(synthetic, path)
    return load_transactions(path)


def test_deterministic_bytes_per_generator_input(tmp_path: Path) -> None:
    paths = [tmp_path / "a.csv.gz", tmp_path / "b.csv.gz", tmp_path / "c.csv.gz"]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        write_transactions(generate_transactions(100, seed=seed), path)
    first, second, other = (p.read_bytes() for p in paths)
    assert first == second
    assert first != other


def test_exact_online_retail_format(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "lines.csv"
    write_transactions(synthetic, path)
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0] == ",".join(SOURCE_COLUMNS)
    assert list(synthetic.columns) == list(SOURCE_COLUMNS)
    dates = synthetic["InvoiceDate"]
    assert dates.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:00").all()
    ids = synthetic["CustomerID"].dropna()
    assert ids.str.fullmatch(r"\d{5}\.0").all()
    assert synthetic["InvoiceNo"].str.fullmatch(r"C?\d{6}").all()
    assert all(row.count(",") == 7 for row in text[1:50])  # no quoting needed


def test_loads_with_the_project_loader(synthetic: pd.DataFrame, loaded: pd.DataFrame) -> None:
    assert len(loaded) == len(synthetic)
    assert loaded["invoiced_at"].min() >= START
    assert loaded["invoiced_at"].max() < END + pd.Timedelta(days=1)
    assert loaded["invoiced_at"].max() >= END  # the year ends on the fixed last day
    clean = clean_transactions(loaded)
    t_ref = default_reference_time(clean, loaded)
    assert t_ref == (END + pd.Timedelta(days=1)).to_pydatetime()
    assert len(compute_rfm(clean, t_ref)) == CUSTOMERS


def test_cleaning_removes_something_under_every_rule(loaded: pd.DataFrame) -> None:
    counts = clean_transactions(loaded, t_ref=END.to_pydatetime()).counts
    assert set(counts) == set(CLEANING_RULES)
    assert all(count > 0 for count in counts.values()), counts


def test_special_features_are_present(loaded: pd.DataFrame) -> None:
    is_return = loaded["invoice"].str.startswith("C")
    assert is_return.any()
    assert {"POST", "D", "M", "BANK CHARGES", "DOT"} <= set(loaded["sku"])
    assert loaded["customer_id"].isna().mean() > 0.1  # anonymous lines
    assert loaded["description"].isna().any()
    assert loaded.duplicated().any()
    assert (loaded["unit_price"] == 0).any()
    assert (loaded.groupby("invoice")["sku"].size() > 5).mean() > 0.3  # multi-line invoices
    # Some invoices are keyed in across a minute boundary.
    assert (loaded.groupby("invoice")["invoiced_at"].nunique() > 1).any()

    # Some customers return more units of an item than they bought in the window.
    lines = clean_transactions(loaded).lines
    units = lines.groupby(["customer_id", "sku", "is_return"])["units"].sum().unstack(fill_value=0)
    assert (units[True] > units[False]).any()


def test_seasonality(loaded: pd.DataFrame) -> None:
    orders = loaded.drop_duplicates("invoice")["invoiced_at"]
    per_month = orders[orders.dt.year == 2011].dt.month.value_counts()
    assert per_month[11] > 1.3 * per_month[[1, 2, 4]].mean()
    assert (orders.dt.day_of_week == 5).sum() == 0  # closed on Saturdays
    hours = orders.dt.hour.value_counts()
    assert hours.idxmax() in (11, 12, 13)
    assert hours.index.min() >= 7 and hours.index.max() <= 21


def test_heavy_tails_and_distinct_behaviours(loaded: pd.DataFrame) -> None:
    clean = clean_transactions(loaded)
    rfm = compute_rfm(clean, default_reference_time(clean, loaded))
    frequency, monetary, recency = rfm["frequency"], rfm["monetary"], rfm["recency_days"]
    assert (frequency == 1).mean() > 0.2  # one-time buyers
    assert frequency.max() > 5 * frequency.median()  # a few very frequent buyers
    assert monetary.max() > 20 * monetary.median()  # wholesalers
    assert (recency <= 30).mean() > 0.15  # recent customers
    assert (recency >= 200).mean() > 0.15  # churned customers
    assert ((rfm["first_purchase"] >= END - pd.Timedelta(days=75)) & (frequency <= 3)).any()


def test_ten_thousand_customers_are_quick() -> None:
    started = time.perf_counter()
    frame = generate_transactions(10_000, seed=1)
    elapsed = time.perf_counter() - started
    assert frame["CustomerID"].nunique() == 10_000
    assert elapsed < 5.0


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="customers"):
        generate_transactions(0)
    with pytest.raises(InvalidInputError, match="unsupported output type"):
        write_transactions(generate_transactions(5), tmp_path / "lines.xlsx")


def test_cli_writes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new folder" / "out.csv.gz"
    result = CliRunner().invoke(synth, ["--output", str(path), "--customers", "50", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "50 customers" in result.output
    assert load_transactions(path)["customer_id"].nunique() == 50
    again = tmp_path / "again.csv.gz"
    CliRunner().invoke(synth, ["-o", str(again), "--customers", "50", "--seed", "2"])
    assert again.read_bytes() == path.read_bytes()


def test_cli_rejects_an_unsupported_suffix(tmp_path: Path) -> None:
    result = CliRunner().invoke(synth, ["--output", str(tmp_path / "out.parquet")])
    assert result.exit_code == 2
    assert "unsupported output type" in result.output
