"""The training pipeline and ``rfm train`` on a small hand-made file, and on UCI (marked)."""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from model_training.card import SEGMENT_COLUMNS
from model_training.cli.train import train as train_command
from model_training.data.rules import NON_PRODUCT_PATTERN, ProductRule
from model_training.fitting import fit_segmenter
from model_training.model.artifact import load_model
from model_training.model.naming import SEGMENT_NAMES, label_for, order_violations
from model_training.model.selection import COMPARISON_COLUMNS
from model_training.pipeline import train

HEADER = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
]
START = datetime(2011, 1, 3, 9, 0)


def _write_transactions(path: Path, n_customers: int = 40) -> Path:
    """Customers with 1..6 invoices spread over the year, plus lines cleaning must drop."""
    rows: list[list[object]] = []
    invoice = 500000
    for index in range(n_customers):
        customer = f"{13000 + index}.0"
        for order in range(1 + index % 6):
            invoice += 1
            when = START + timedelta(days=(index * 7 + order * 41) % 340, hours=order)
            quantity = 1 + (index * 3 + order) % 12
            price = 1.25 + (index % 9) * 2.5
            stamp = when.strftime("%Y-%m-%d %H:%M:%S")
            rows.append([invoice, "85123A", "HEART", quantity, stamp, price, customer, "UK"])
            rows.append([invoice, "POST", "POSTAGE", 1, stamp, 18.0, customer, "UK"])
    # A return, an anonymous line and a zero price line.
    stamp = (START + timedelta(days=300)).strftime("%Y-%m-%d %H:%M:%S")
    rows.append(["C600000", "85123A", "HEART", -1, stamp, 1.25, "13000.0", "UK"])
    rows.append([600001, "22111", "BAG", 5, stamp, 2.0, "", "UK"])
    rows.append([600002, "22112", "FREE", 5, stamp, 0.0, "13001.0", "UK"])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_train_writes_every_output(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    steps: list[tuple[str, float | None]] = []
    result = train(source, tmp_path / "out", progress=lambda step, s: steps.append((step, s)))
    out = tmp_path / "out"

    done = [step for step, seconds in steps if seconds is not None]
    assert done == ["load", "clean", "rfm", "model", "write", "report"]
    assert set(result.timings) == {*done, "total"}

    with (out / "rfm.csv").open(encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "customer_id,recency_days,frequency,monetary,segment"
    table = pd.read_csv(out / "rfm.csv", dtype={"customer_id": str})
    assert len(table) == 40
    assert table["customer_id"].tolist() == sorted(table["customer_id"])
    assert all(len(line.split(",")[3].split(".")[1]) == 2 for line in lines[1:])
    assert set(table["segment"]) <= set(SEGMENT_NAMES)

    card = json.loads((out / "model_card.json").read_text())
    for key in (
        "version",
        "method",
        "trained_at",
        "t_ref",
        "n_customers",
        "n_segments",
        "silhouette",
        "classifier_accuracy",
        "segments",
        "cleaning",
        "features",
        "transform",
        "quality",
    ):
        assert key in card, key
    assert card["n_customers"] == 40
    last = pd.read_csv(source)["InvoiceDate"].max()
    assert card["t_ref"] == f"{(pd.Timestamp(last) + pd.Timedelta(days=1)).date()}T00:00:00"
    assert card["cleaning"]["non_product"] == sum(1 + i % 6 for i in range(40))  # POST lines
    assert card["cleaning"]["missing_customer_or_description"] == 1
    assert len(card["segments"]) == card["n_segments"] == result.n_segments
    assert set(card["segments"][0]) == set(SEGMENT_COLUMNS)
    assert abs(sum(segment["share"] for segment in card["segments"]) - 1.0) < 1e-9
    assert card["version"].startswith(card["t_ref"] + "Z-")
    assert list(result.comparison.columns) == COMPARISON_COLUMNS
    assert (out / "report.html").stat().st_size > 1000

    loaded = load_model(out)
    assert loaded.version == result.version
    rfm = table[["recency_days", "frequency", "monetary"]].to_numpy(dtype=np.float64)
    assert loaded.predict_segments(rfm).tolist() == table["segment"].tolist()


def test_t_ref_is_honoured_and_version_depends_on_data(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    first = train(source, tmp_path / "a", t_ref=datetime(2012, 1, 1))
    second = train(source, tmp_path / "b", t_ref=datetime(2012, 1, 1))
    assert first.version == second.version
    assert first.version.startswith("2012-01-01T00:00:00Z-")
    other = train(_write_transactions(tmp_path / "more.csv", 41), tmp_path / "c")
    assert other.version.split("-")[-1] != first.version.split("-")[-1]


def test_fit_segmenter_from_rfm_frame_alone() -> None:
    rng = np.random.default_rng(5)
    rfm = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 370, 300),
            "frequency": rng.geometric(0.3, 300),
            "monetary": rng.lognormal(6, 1, 300),
        },
        index=pd.Index([str(12000 + i) for i in range(300)], name="customer_id"),
    )
    segmenter, comparison, extras = fit_segmenter(rfm)
    assert comparison["chosen"].sum() == 1
    assert set(comparison["method"]) == {"kmeans", "gmm", "agglomerative"}
    assert segmenter.n_clusters == int(comparison.loc[comparison["chosen"], "k"].iloc[0])
    assert list(extras.view2d.columns) == ["x", "y", "segment"]
    assert len(extras.view2d) == 300
    assert extras.quality["silhouette"] == pytest.approx(comparison["silhouette"].max())


def test_cli_trains_and_prints_summary(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    runner = CliRunner()
    result = runner.invoke(
        train_command, ["--input", str(source), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "model done in" in result.output
    assert "silhouette=" in result.output
    assert "segment" in result.output and "action" in result.output
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    lines = result.output.splitlines()
    rows = lines[lines.index(next(line for line in lines if line.startswith("segment "))) + 1 :]
    shown = [row for row in rows if row and not row.startswith("written")]
    by_revenue = sorted(card["segments"], key=lambda s: -s["revenue_share"])
    assert [row[:20].rstrip() for row in shown] == [label_for(s["name"]) for s in by_revenue]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("InvoiceNo,StockCode\n1,2\n", "missing column"),
        (",".join(HEADER) + "\n536365,85123A,X,six,2010-12-01 08:26:00,2.55,17850,UK\n", "six"),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(
    tmp_path: Path, content: str | None, message: str
) -> None:
    source = tmp_path / "bad.csv"
    if content is not None:
        source.write_text(content)
    result = CliRunner().invoke(
        train_command, ["--input", str(source), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_cli_too_few_customers_exits_2(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv", n_customers=3)
    result = CliRunner().invoke(
        train_command, ["--input", str(source), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "at least 10" in result.stderr


def test_the_card_records_the_product_rule(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    default = train(source, tmp_path / "a", t_ref=datetime(2012, 1, 1))
    assert default.card["non_product_pattern"] == NON_PRODUCT_PATTERN
    assert default.card["cleaning"]["after_t_ref"] == 0
    # Postage counts as a product under a rule that only excludes bank charges.
    own = train(source, tmp_path / "b", t_ref=datetime(2012, 1, 1), rule=ProductRule("BANK.*"))
    card = json.loads((tmp_path / "b" / "model_card.json").read_text())
    assert card["non_product_pattern"] == "BANK.*"
    assert card["cleaning"]["non_product"] == 0
    assert default.card["cleaning"]["non_product"] > 0
    assert own.card["cleaning"]["rows_out"] > default.card["cleaning"]["rows_out"]


def test_cli_takes_the_product_rule_from_the_option_or_the_environment(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    for args, env, out in (
        (["--non-product-pattern", "BANK.*"], {}, "a"),
        ([], {"RFM_NON_PRODUCT_PATTERN": "BANK.*"}, "b"),
    ):
        result = CliRunner().invoke(
            train_command,
            ["--input", str(source), "--output", str(tmp_path / out), *args],
            env=env,
        )
        assert result.exit_code == 0, result.output
        card = json.loads((tmp_path / out / "model_card.json").read_text())
        assert card["non_product_pattern"] == "BANK.*"


@pytest.mark.parametrize(
    ("args", "env", "name"),
    [
        (["--non-product-pattern", "[A-Z"], {}, "--non-product-pattern"),
        ([], {"RFM_NON_PRODUCT_PATTERN": "(POST"}, "RFM_NON_PRODUCT_PATTERN"),
    ],
)
def test_cli_with_a_bad_product_pattern_exits_2_with_one_error_line(
    tmp_path: Path, args: list[str], env: dict[str, str], name: str
) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    result = CliRunner().invoke(
        train_command, ["--input", str(source), "--output", str(tmp_path / "out"), *args], env=env
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {name}: ")
    assert len(result.stderr.splitlines()) == 1
    assert "not a regular expression" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_earlier_t_ref_leaves_later_invoices_out(tmp_path: Path) -> None:
    source = _write_transactions(tmp_path / "lines.csv")
    t_ref = datetime(2011, 6, 1)
    cut = train(source, tmp_path / "cut", t_ref=t_ref)
    table = pd.read_csv(tmp_path / "cut" / "rfm.csv", dtype={"customer_id": str})
    assert (table["recency_days"] >= 0).all()
    raw = pd.read_csv(source, dtype={"InvoiceNo": str, "CustomerID": str})
    valid = raw[(raw["StockCode"] != "POST") & raw["CustomerID"].notna() & (raw["UnitPrice"] > 0)]
    cleaning = cut.card["cleaning"]
    # Each later line the other rules keep: a line is counted by the first rule removing it.
    assert cleaning["after_t_ref"] == (pd.to_datetime(valid["InvoiceDate"]) > t_ref).sum() > 0
    assert (
        cleaning["rows_out"]
        + sum(count for rule, count in cleaning.items() if rule not in ("rows_in", "rows_out"))
        == cleaning["rows_in"]
    )
    before = valid[pd.to_datetime(valid["InvoiceDate"]) <= t_ref]
    buyers = before[~before["InvoiceNo"].str.startswith("C")]
    assert set(table["customer_id"]) == set(buyers["CustomerID"].str.removesuffix(".0"))
    assert cut.card["t_ref"] == "2011-06-01T00:00:00"


@pytest.mark.uci
def test_full_uci_train(uci_path: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    result = train(uci_path, tmp_path)
    elapsed = time.perf_counter() - started
    table = pd.read_csv(tmp_path / "rfm.csv", dtype={"customer_id": str, "monetary": str})
    assert len(table) == 4334
    rows = table.set_index("customer_id")
    for customer, expected in {
        "12346": (325, 1, "0.00"),
        "12347": (2, 7, "4310.00"),
        "12348": (75, 4, "1437.24"),
    }.items():
        row = rows.loc[customer]
        assert (row["recency_days"], row["frequency"], row["monetary"]) == expected
    assert result.card["n_fit_customers"] == 4044
    assert 4 <= result.n_segments <= 8
    assert result.silhouette is not None and result.silhouette > 0.25
    # Generous bound: the target is 30 s on 2 idle cores; CI machines are shared.
    assert elapsed < 90, result.timings
    # Names ordered by value, over the customers fitted on and over all customers alike.
    model = load_model(tmp_path).segmenter
    names = [model.segment_names_[label] for label in range(model.n_clusters)]
    assert order_violations(model.profiles_, names) == []
    table = result.segments
    means = table[["recency_days", "frequency", "monetary"]].to_numpy()
    assert order_violations(means, table["name"].tolist()) == []
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "December 2011 is a partial month" in page
