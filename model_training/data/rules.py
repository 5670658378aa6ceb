"""The RFM rules shared by the batch pipeline and the stream.

Everything here is pure: scalar helpers the stream applies to one event, and the constants
the batch pipeline vectorises. Keeping them in one module is what makes the two agree.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_RULE",
    "NON_PRODUCT_PATTERN",
    "RETURN_PREFIX",
    "SECONDS_PER_DAY",
    "ProductRule",
    "default_t_ref",
    "is_return_invoice",
    "matched_return_value",
    "recency_days",
]

#: The reference analysis's rule for the Online Retail format: a stock code that begins with a
#: letter is postage, carriage, a discount, a manual adjustment or a fee (``POST``, ``C2``,
#: ``D``, ``M``, ``DOT``, ``CRUK``, ``BANK CHARGES``, ``PADS``, ``AMAZONFEE``), not a product.
#: Matched against the whole stock code. Shops whose product codes begin with letters set their
#: own pattern (``RFM_NON_PRODUCT_PATTERN``, ``rfm train --non-product-pattern``).
NON_PRODUCT_PATTERN = r"[A-Za-z].*"

#: Invoice numbers starting with this letter are returns (cancellations).
RETURN_PREFIX = "C"

SECONDS_PER_DAY = 86_400


class ProductRule:
    """Which stock codes are products: those the non-product pattern does not match whole.

    One rule is shared by ``rfm train``, ``rfm bootstrap``, the replayer and the worker
    (``RFM_NON_PRODUCT_PATTERN``), and recorded in the model card.

    Parameters
    ----------
    pattern
        A regular expression matched against the whole stock code.

    Raises
    ------
    ValueError
        ``pattern`` is not a valid regular expression.

    Examples
    --------
    >>> rule = ProductRule()
    >>> rule.is_product("85123A"), rule.is_product("POST"), rule.is_product("BANK CHARGES")
    (True, False, False)
    >>> rule.is_product("C2"), rule.is_product("DCGS0076")
    (False, False)
    >>> ProductRule(r"[A-Za-z ]+").is_product("C2")  # letters and spaces only
    True
    """

    def __init__(self, pattern: str = NON_PRODUCT_PATTERN) -> None:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        self.pattern = pattern
        self._fullmatch = compiled.fullmatch
        self._answers: dict[str, bool] = {}

    def is_product(self, sku: str) -> bool:
        """Tell whether ``sku`` names a product (answers are remembered: codes recur)."""
        answer = self._answers.get(sku)
        if answer is None:
            answer = self._fullmatch(sku) is None
            if len(self._answers) < 1 << 16:
                self._answers[sku] = answer
        return answer

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProductRule) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"ProductRule({self.pattern!r})"


#: The default rule.
DEFAULT_RULE = ProductRule()


def is_return_invoice(invoice: str) -> bool:
    """Tell whether an invoice number marks a return.

    >>> is_return_invoice("C536379"), is_return_invoice("536365")
    (True, False)
    """
    return invoice.startswith(RETURN_PREFIX)


def matched_return_value(bought: float, returned: float, returned_value: float) -> float:
    """Value of the returned units that count against a customer for one stock code.

    ``matched = min(returned, bought)`` units, valued at the return lines' mean unit price.
    Units returned beyond what was bought (bought before the data window) are ignored.

    >>> matched_return_value(bought=10, returned=4, returned_value=8.0)
    8.0
    >>> matched_return_value(bought=2, returned=4, returned_value=8.0)
    4.0
    >>> matched_return_value(bought=0, returned=4, returned_value=8.0)
    0.0
    """
    if returned <= 0:
        return 0.0
    return min(returned, bought) * (returned_value / returned)


def recency_days(last_purchase: datetime, now: datetime) -> int:
    """Whole days (floor) from the last purchase to ``now``.

    >>> recency_days(datetime(2011, 1, 18, 10, 1), datetime(2011, 12, 10))
    325
    """
    return math.floor((now - last_purchase).total_seconds() / SECONDS_PER_DAY)


def default_t_ref(last_transaction: datetime) -> datetime:
    """The reference time used when none is given: midnight after the last transaction.

    >>> default_t_ref(datetime(2011, 12, 9, 12, 50))
    datetime.datetime(2011, 12, 10, 0, 0)
    """
    day = last_transaction.replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)
