"""Shared fixtures: where the UCI Online Retail file is, and a builder of small loaded frames."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from model_training.data.loading import SOURCE_COLUMNS, normalise_frame

#: One transaction line as written in the file: InvoiceNo, StockCode, Description, Quantity,
#: InvoiceDate, UnitPrice, CustomerID, Country (text; ``None`` for an empty cell).
Row = tuple[str, str, str | None, int, str, float, str | None, str]
FrameBuilder = Callable[[Sequence[Row]], pd.DataFrame]

_REPO = Path(__file__).resolve().parents[1]
_DEFAULT_UCI = _REPO.parent / "shared" / "data" / "online_retail.csv.gz"


@pytest.fixture(scope="session")
def uci_path() -> Path:
    """The UCI Online Retail file: ``$RFM_UCI_PATH``, else ``../shared/data/`` beside the repo."""
    path = Path(os.environ.get("RFM_UCI_PATH", _DEFAULT_UCI))
    if not path.is_file():
        pytest.skip(f"UCI Online Retail file not found at {path}: set RFM_UCI_PATH")
    return path


def _build(rows: Sequence[Row]) -> pd.DataFrame:
    raw = pd.DataFrame(
        [["" if cell is None else str(cell) for cell in row] for row in rows],
        columns=list(SOURCE_COLUMNS),
        dtype=str,
    )
    return normalise_frame(raw.replace("", None), "test rows")


@pytest.fixture(scope="session")
def make_frame() -> FrameBuilder:
    """Build a frame as :func:`load_transactions` returns it from a few hand-written rows.

    Session-scoped (it is a pure function) so that hypothesis tests can use it too.
    """
    return _build
