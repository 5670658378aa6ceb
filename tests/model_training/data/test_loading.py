"""Loading Online Retail files: formats, encodings, date styles, id styles and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from model_training.data.loading import COLUMNS, SOURCE_COLUMNS, load_transactions
from model_training.exceptions import InvalidInputError

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
ISO_LINES = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,"
    "United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",
    "536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom",
]
US_LINES = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom",
    "536414,22139,,56,12/1/2010 11:52,0,,United Kingdom",
]


def write(path: Path, lines: list[str], *, encoding: str = "utf-8") -> Path:
    text = "\n".join([HEADER, *lines]) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(text.encode(encoding))
    else:
        path.write_bytes(text.encode(encoding))
    return path


def check_expected(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == COLUMNS
    assert frame["invoice"].tolist() == ["536365", "C536379", "536414"]
    assert frame["quantity"].tolist() == [6, -1, 56]
    assert frame["quantity"].dtype == "int64"
    assert frame["unit_price"].tolist() == [2.55, 27.5, 0.0]
    assert frame["invoiced_at"].tolist() == [
        pd.Timestamp("2010-12-01 08:26"),
        pd.Timestamp("2010-12-01 09:41"),
        pd.Timestamp("2010-12-01 11:52"),
    ]
    assert frame["customer_id"].iloc[0] == "17850"
    assert frame["customer_id"].iloc[1] == "14527"
    assert pd.isna(frame["customer_id"].iloc[2])
    assert pd.isna(frame["description"].iloc[2])


@pytest.mark.parametrize("name", ["lines.csv", "lines.csv.gz", "LINES.CSV"])
@pytest.mark.parametrize("lines", [ISO_LINES, US_LINES], ids=["iso-dates", "us-dates"])
def test_csv_and_csv_gz_in_both_date_styles(tmp_path: Path, name: str, lines: list[str]) -> None:
    check_expected(load_transactions(write(tmp_path / name, lines)))


def test_xlsx(tmp_path: Path) -> None:
    rows = [line.split(",") for line in ISO_LINES]
    frame = pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))
    path = tmp_path / "lines.xlsx"
    frame.to_excel(path, index=False, engine="openpyxl")
    check_expected(load_transactions(path))


@pytest.mark.parametrize("encoding", ["utf-8", "iso-8859-1", "utf-8-sig"])
def test_text_encodings(tmp_path: Path, encoding: str) -> None:
    lines = [
        *US_LINES,
        "536370,22728,ALARM CLOCK BAKELIKE CRÈME,24,12/1/2010 8:45,3.75,12583,France",
    ]
    frame = load_transactions(write(tmp_path / "lines.csv", lines, encoding=encoding))
    assert frame["description"].iloc[-1] == "ALARM CLOCK BAKELIKE CRÈME"
    assert frame.columns[0] == "invoice"  # a byte-order mark does not stick to the header


@pytest.mark.parametrize("written", ["17850", "17850.0", " 17850.0 "])
def test_customer_id_styles(tmp_path: Path, written: str) -> None:
    line = f"536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,{written},United Kingdom"
    assert load_transactions(write(tmp_path / "a.csv", [line]))["customer_id"].tolist() == ["17850"]


def test_columns_in_another_order_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "Country,CustomerID,UnitPrice,InvoiceDate,Quantity,Description,StockCode,InvoiceNo,Extra\n"
        "France,12583.0,3.75,2010-12-01 08:45:00,24,CLOCK,22728,536370,x\n"
    )
    frame = load_transactions(path)
    assert list(frame.columns) == COLUMNS
    assert frame.iloc[0]["sku"] == "22728"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InvalidInputError, match=r"nope\.csv: no such file"):
        load_transactions(path)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n")
    with pytest.raises(InvalidInputError, match=r"missing column.*CustomerID") as caught:
        load_transactions(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("column", "bad", "position"),
    [("Quantity", "six", 3), ("Quantity", "6.5", 3), ("UnitPrice", "2,55", 5)],
)
def test_unparsable_number_names_file_line_and_column(
    tmp_path: Path, column: str, bad: str, position: int
) -> None:
    cells = US_LINES[1].split(",")
    cells[position] = f'"{bad}"'
    path = write(tmp_path / "a.csv", [US_LINES[0], ",".join(cells), US_LINES[2]])
    with pytest.raises(InvalidInputError) as caught:
        load_transactions(path)
    error = caught.value
    assert (error.path, error.line, error.column) == (str(path), 3, column)
    assert f"{path}, line 3, column '{column}'" in str(error)
    assert repr(bad) in str(error)


@pytest.mark.parametrize(
    ("lines", "line"),
    [
        # The first date does not look like a date in any accepted style.
        ([ISO_LINES[0].replace("2010-12-01 08:26:00", "yesterday"), ISO_LINES[1]], 2),
        # A later date is in another style than the first one.
        ([ISO_LINES[0], ISO_LINES[1], ISO_LINES[2].replace("2010-12-01 11:52:00", "12/1/2010")], 4),
        ([ISO_LINES[0], ISO_LINES[1].replace("2010-12-01", "2010-13-01")], 3),
    ],
)
def test_unparsable_date_names_line_and_column(tmp_path: Path, lines: list[str], line: int) -> None:
    path = write(tmp_path / "a.csv", lines)
    with pytest.raises(InvalidInputError) as caught:
        load_transactions(path)
    assert (caught.value.line, caught.value.column) == (line, "InvoiceDate")
    assert f"line {line}, column 'InvoiceDate'" in str(caught.value)


def test_empty_invoice_number(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [ISO_LINES[0], "," + ISO_LINES[1].split(",", 1)[1]])
    with pytest.raises(InvalidInputError, match="line 3, column 'InvoiceNo'"):
        load_transactions(path)


@pytest.mark.parametrize("name", ["lines.json", "lines.txt", "lines.xls", "lines"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HEADER + "\n")
    with pytest.raises(InvalidInputError, match="unsupported file type"):
        load_transactions(path)


def test_corrupt_gzip_and_xlsx(tmp_path: Path) -> None:
    for name in ("a.csv.gz", "a.xlsx"):
        path = tmp_path / name
        path.write_bytes(b"not compressed at all")
        with pytest.raises(InvalidInputError, match=name):
            load_transactions(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("")
    with pytest.raises(InvalidInputError, match="empty"):
        load_transactions(path)


def test_header_only_gives_an_empty_frame(tmp_path: Path) -> None:
    frame = load_transactions(write(tmp_path / "a.csv", []))
    assert list(frame.columns) == COLUMNS
    assert frame.empty
