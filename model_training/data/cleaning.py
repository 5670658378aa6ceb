"""Cleaning rules: which transaction lines count towards a customer's RFM.

Rules, applied in this order, each counting the lines it removes (see docs/design.md):

1. ``missing_customer_or_description``: no customer id or no description, not attributable.
2. ``duplicate_lines``: exact duplicates of an earlier line.
3. ``non_product``: stock codes the product rule says are not products (by default codes
   beginning with a letter: postage, carriage, discounts, fees).
4. ``zero_price``: unit price 0 (or below: free samples and bookkeeping entries).
5. ``inconsistent_quantity``: a purchase with a quantity of 0 or less, or a return with a
   quantity of 0 or more (the sign disagrees with the invoice kind).
6. ``after_t_ref``: lines of invoices dated after the reference time, when one is given: RFM
   as of ``t_ref`` knows nothing of later orders (an invoice at exactly ``t_ref`` counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from model_training.data.rules import DEFAULT_RULE, RETURN_PREFIX, ProductRule

__all__ = [
    "CLEANING_RULES",
    "CleanLines",
    "attributable_lines",
    "clean_transactions",
    "inconsistent_quantity",
    "return_mask",
]

CLEANING_RULES = (
    "missing_customer_or_description",
    "duplicate_lines",
    "non_product",
    "zero_price",
    "inconsistent_quantity",
    "after_t_ref",
)


@dataclass(frozen=True)
class CleanLines:
    """Transaction lines that count, with what each rule removed.

    ``lines`` keeps the loader's columns plus ``invoice_time`` (the earliest time among the
    invoice's attributable lines), ``is_return`` (bool), ``units`` (positive int: units bought
    or returned) and ``value`` (``units * unit_price``).
    """

    lines: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    rows_in: int = 0

    @property
    def rows_out(self) -> int:
        """Number of lines kept."""
        return len(self.lines)


def attributable_lines(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rules 1 and 2: the lines that can be attributed to a customer, without duplicates.

    Also adds ``invoice_time``, the earliest time among the invoice's attributable lines. The
    replayer turns exactly these lines into order events; the remaining rules are applied by
    both the batch pipeline and the stream.
    """
    counts: dict[str, int] = {}
    keep = frame["customer_id"].notna() & frame["description"].notna()
    counts["missing_customer_or_description"] = int((~keep).sum())
    lines = frame[keep]

    duplicated = lines.duplicated(keep="first")
    counts["duplicate_lines"] = int(duplicated.sum())
    lines = lines[~duplicated].copy()
    # Fixed before any line is judged a non-product so that the stream, which sees whole
    # invoices, agrees.
    lines["invoice_time"] = lines.groupby("invoice", observed=True)["invoiced_at"].transform("min")
    return lines, counts


def clean_transactions(
    frame: pd.DataFrame, rule: ProductRule = DEFAULT_RULE, t_ref: datetime | None = None
) -> CleanLines:
    """Apply the cleaning rules to a frame from :func:`~model_training.loading.load_transactions`.

    Vectorised: no per-row Python.

    Parameters
    ----------
    frame
        Transaction lines as loaded.
    rule
        Which stock codes are products (rule 3).
    t_ref
        The reference time of the RFM: lines of invoices dated after it are removed (rule 6).
        None keeps every line.

    Returns
    -------
    CleanLines
        The kept lines and the count removed by each rule, in :data:`CLEANING_RULES` order.

    Examples
    --------
    >>> from model_training.data.loading import normalise_frame
    >>> raw = pd.DataFrame({
    ...     "InvoiceNo": ["1", "1", "2"], "StockCode": ["85123A", "C2", "22423"],
    ...     "Description": ["HEART", "CARRIAGE", "CAKESTAND"], "Quantity": ["6", "1", "2"],
    ...     "InvoiceDate": ["2011-01-10 10:00:00", "2011-01-10 10:00:00", "2011-02-01 09:00:00"],
    ...     "UnitPrice": ["2.55", "50", "12.75"], "CustomerID": ["17850"] * 3,
    ...     "Country": ["United Kingdom"] * 3})
    >>> frame = normalise_frame(raw, "example")
    >>> clean = clean_transactions(frame, t_ref=datetime(2011, 1, 31))
    >>> clean.rows_out, clean.counts["non_product"], clean.counts["after_t_ref"]
    (1, 1, 1)
    >>> clean_transactions(frame, ProductRule(r"POST|D|M")).rows_out
    3
    """
    rows_in = len(frame)
    lines, counts = attributable_lines(frame)

    non_product = lines["sku"].str.fullmatch(rule.pattern).fillna(False).astype(bool)
    counts["non_product"] = int(non_product.sum())
    lines = lines[~non_product]

    zero_price = lines["unit_price"] <= 0
    counts["zero_price"] = int(zero_price.sum())
    lines = lines[~zero_price]

    is_return = return_mask(lines)
    inconsistent = inconsistent_quantity(lines, is_return)
    counts["inconsistent_quantity"] = int(inconsistent.sum())
    keep_lines = ~inconsistent
    lines = lines[keep_lines]
    is_return = is_return[keep_lines]

    # Judged by invoice time, so that an invoice is kept or removed whole, as the stream
    # applies it: one event at its invoice time.
    if t_ref is None:
        after = pd.Series(False, index=lines.index)
    else:
        after = lines["invoice_time"] > pd.Timestamp(t_ref)
    counts["after_t_ref"] = int(after.sum())
    lines = lines[~after].copy()
    is_return = is_return[~after]

    lines["is_return"] = is_return.to_numpy()
    lines["units"] = lines["quantity"].abs().astype("int64")
    lines["value"] = lines["units"] * lines["unit_price"]
    return CleanLines(lines=lines, counts=counts, rows_in=rows_in)


def return_mask(lines: pd.DataFrame) -> pd.Series:
    """True for lines of return invoices (invoice number starting with ``C``)."""
    # Judged once per invoice number: an invoice has many lines.
    codes, invoices = pd.factorize(lines["invoice"].to_numpy(dtype=object))
    returns = np.array([invoice.startswith(RETURN_PREFIX) for invoice in invoices] + [False])
    return pd.Series(returns[codes], index=lines.index, name="invoice")


def inconsistent_quantity(lines: pd.DataFrame, is_return: pd.Series) -> pd.Series:
    """True where the quantity's sign disagrees with the invoice kind (or is zero)."""
    quantity = lines["quantity"]
    return (is_return & (quantity >= 0)) | (~is_return & (quantity <= 0))
