"""Read transaction files in the Online Retail format.

Accepted: ``.csv``, ``.csv.gz`` and ``.xlsx``; dates written ``2010-12-01 08:26:00`` or
``12/1/2010 8:26``; UTF-8 or ISO-8859-1; customer ids written ``17850`` or ``17850.0``.
Anything else fails with :class:`InvalidInputError` naming the file, line and column.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from model_training.exceptions import InvalidInputError

__all__ = ["COLUMNS", "SOURCE_COLUMNS", "load_transactions", "normalise_frame"]

#: Column names of the Online Retail format, mapped to the names used inside the project.
SOURCE_COLUMNS: dict[str, str] = {
    "InvoiceNo": "invoice",
    "StockCode": "sku",
    "Description": "description",
    "Quantity": "quantity",
    "InvoiceDate": "invoiced_at",
    "UnitPrice": "unit_price",
    "CustomerID": "customer_id",
    "Country": "country",
}
COLUMNS = list(SOURCE_COLUMNS.values())

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")
_FIRST_DATA_LINE = 2  # line 1 is the header


def load_transactions(path: str | Path) -> pd.DataFrame:
    """Load an Online Retail file into a frame with the project's column names.

    Parameters
    ----------
    path
        A ``.csv``, ``.csv.gz`` or ``.xlsx`` file with the header
        ``InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`; ``invoiced_at`` as ``datetime64``, ``quantity`` as ``int64``,
        ``unit_price`` as ``float64``, ``customer_id`` as text without a trailing ``.0`` (missing
        ids are ``NA``). The index is the row's position in the file.

    Raises
    ------
    InvalidInputError
        The file is missing, unreadable, lacks a column or holds a value that does not parse.
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise InvalidInputError(name, "no such file")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith(".xlsx"):
        raw = _read_xlsx(path)
    elif suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
        raw = _read_csv(path)
    else:
        raise InvalidInputError(name, "unsupported file type: expected .csv, .csv.gz or .xlsx")
    return normalise_frame(raw, name)


def _read_csv(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise InvalidInputError(str(path), f"cannot read file: {exc}") from exc
    try:
        # Decoded by the parser as it goes (a byte-order mark dropped); other public copies of
        # the data set are ISO-8859-1.
        try:
            return _parse_csv(data, "utf-8-sig")
        except UnicodeDecodeError:
            return _parse_csv(data, "iso-8859-1")
    except pd.errors.EmptyDataError as exc:
        raise InvalidInputError(str(path), "the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise InvalidInputError(str(path), f"not a valid CSV file: {exc}") from exc


def _parse_csv(data: bytes, encoding: str) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], encoding=encoding
    )


def _read_xlsx(path: Path) -> pd.DataFrame:
    try:
        return pd.read_excel(
            path, dtype=str, engine="openpyxl", keep_default_na=False, na_values=[""]
        )
    except Exception as exc:  # openpyxl raises many unrelated types for a bad workbook
        raise InvalidInputError(str(path), f"not a readable .xlsx workbook: {exc}") from exc


def normalise_frame(raw: pd.DataFrame, name: str) -> pd.DataFrame:
    """Check and convert a frame of text cells in the Online Retail format.

    ``name`` is used in error messages. Line numbers count the header as line 1.
    """
    missing = [column for column in SOURCE_COLUMNS if column not in raw.columns]
    if missing:
        raise InvalidInputError(
            name, f"missing column(s) {', '.join(missing)}; expected {', '.join(SOURCE_COLUMNS)}"
        )
    frame = raw[list(SOURCE_COLUMNS)].rename(columns=SOURCE_COLUMNS).reset_index(drop=True)
    for column in ("invoice", "sku", "description", "country"):
        frame[column] = _per_distinct(frame[column], _text)
    frame["customer_id"] = _per_distinct(
        frame["customer_id"], lambda ids: _text(ids).str.replace(r"\.0+$", "", regex=True)
    )

    frame["quantity"] = _parse_number(frame["quantity"], name, "Quantity", integer=True)
    frame["unit_price"] = _parse_number(frame["unit_price"], name, "UnitPrice", integer=False)
    frame["invoiced_at"] = _parse_dates(frame["invoiced_at"], name)

    for column, source in (("invoice", "InvoiceNo"), ("sku", "StockCode")):
        blank = frame[column].isna()
        if blank.any():
            raise InvalidInputError(name, "empty value", line=_line(blank), column=source)
    return frame


def _per_distinct(values: pd.Series, convert: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``convert`` of every value, computed once per distinct value: columns repeat theirs.

    Missing values stay missing (as ``convert``'s type has them).
    """
    codes, distinct = pd.factorize(values.to_numpy(dtype=object))
    converted = convert(pd.Series(distinct, dtype=object))
    converted_values = converted.array.take(codes, allow_fill=True)
    return pd.Series(converted_values, index=values.index, name=values.name)


def _text(values: pd.Series) -> pd.Series:
    """Text without surrounding blanks; empty text is missing."""
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _stripped(values: pd.Series, position: int) -> object:
    """The value at ``position`` as an error message shows it."""
    return values.iloc[position : position + 1].astype("string").str.strip().iloc[0]


def _line(mask: pd.Series) -> int:
    first = int(mask.to_numpy().nonzero()[0][0])
    return first + _FIRST_DATA_LINE


def _parse_number(values: pd.Series, name: str, column: str, *, integer: bool) -> pd.Series:
    parsed = _per_distinct(
        values, lambda text: pd.to_numeric(text.astype("string").str.strip(), errors="coerce")
    )
    bad = parsed.isna()
    if integer:
        bad = bad | (parsed.fillna(0) % 1 != 0)
    if bad.any():
        line = _line(bad)
        value = _stripped(values, line - _FIRST_DATA_LINE)
        kind = "a whole number" if integer else "a number"
        raise InvalidInputError(name, f"{value!r} is not {kind}", line=line, column=column)
    return parsed.astype("int64") if integer else parsed.astype("float64")


def _parse_dates(values: pd.Series, name: str) -> pd.Series:
    # Each distinct text parsed once: an invoice's lines share their time.
    codes, distinct = pd.factorize(values.to_numpy(dtype=object))
    text = pd.Series(distinct, dtype=object).astype("string").str.strip()
    if text.empty:
        if len(values):
            raise InvalidInputError(name, "empty date", line=_FIRST_DATA_LINE, column="InvoiceDate")
        return pd.Series(pd.to_datetime([]), index=values.index, dtype="datetime64[ns]")
    sample = str(text.iloc[0])  # the first value present: codes count from the top
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if pd.notna(parsed.iloc[0]):
            break
    else:
        raise InvalidInputError(
            name,
            f"{sample!r} is not a date like 2010-12-01 08:26:00 or 12/1/2010 8:26",
            line=int((codes == 0).argmax()) + _FIRST_DATA_LINE,
            column="InvoiceDate",
        )
    dates = pd.Series(
        parsed.array.take(codes, allow_fill=True), index=values.index, name=values.name
    )
    bad = dates.isna()
    if bad.any():
        line = _line(bad)
        value = _stripped(values, line - _FIRST_DATA_LINE)
        raise InvalidInputError(
            name,
            f"{value!r} is not a date in the file's format ({fmt})",
            line=line,
            column="InvoiceDate",
        )
    return dates.astype("datetime64[ns]")
