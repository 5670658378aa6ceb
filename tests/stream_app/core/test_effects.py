"""An order event's effect on state: product lines summed per stock code, the rest counted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import pytest

from stream_app.core.effects import ItemDelta, order_effect
from stream_app.core.events import OrderEvent, OrderLine

WHEN = datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def event(
    *lines: tuple[str, int, float],
    kind: Literal["purchase", "return"] = "purchase",
    country: str | None = "United Kingdom",
    event_id: str = "536365",
) -> OrderEvent:
    return OrderEvent(
        event_id=event_id,
        kind=kind,
        order_id=event_id,
        customer_id="17850",
        occurred_at=WHEN,
        country=country,
        lines=[OrderLine(sku=sku, quantity=qty, unit_price=price) for sku, qty, price in lines],
    )


def test_identity_fields_are_carried() -> None:
    effect = order_effect(event(("85123A", 6, 2.55), event_id="536999"))
    assert effect.customer_id == "17850"
    assert effect.event_id == "536999"
    assert effect.country == "United Kingdom"
    assert not effect.is_return


def test_occurred_at_is_epoch_seconds() -> None:
    effect = order_effect(event(("85123A", 6, 2.55)))
    assert effect.occurred_at == 1291191960.0
    assert datetime.fromtimestamp(effect.occurred_at, tz=UTC) == WHEN


def test_missing_country_becomes_empty_text() -> None:
    assert order_effect(event(("85123A", 1, 1.0), country=None)).country == ""


@pytest.mark.parametrize(
    "code", ["POST", "D", "M", "BANK CHARGES", "DOT", "CRUK", "post", "C2", "DCGS0076"]
)
def test_non_product_codes_are_skipped_and_counted(code: str) -> None:
    effect = order_effect(event(("85123A", 2, 3.0), (code, 1, 18.0)))
    assert effect.items == (ItemDelta("85123A", 2, 6.0),)
    assert effect.skipped_non_product == 1
    assert effect.skipped_zero_price == 0


@pytest.mark.parametrize("code", ["85123A", "22423", "85099B", "15056BL"])
def test_product_codes_are_kept(code: str) -> None:
    effect = order_effect(event((code, 2, 3.0)))
    assert [item.sku for item in effect.items] == [code]
    assert effect.skipped_non_product == 0


def test_zero_price_lines_are_skipped_and_counted() -> None:
    effect = order_effect(event(("85123A", 2, 3.0), ("22423", 5, 0.0), ("22424", 1, 0.0)))
    assert effect.items == (ItemDelta("85123A", 2, 6.0),)
    assert effect.skipped_zero_price == 2
    assert effect.skipped_non_product == 0


def test_non_product_with_zero_price_counts_as_non_product() -> None:
    effect = order_effect(event(("POST", 1, 0.0), ("85123A", 1, 1.0)))
    assert (effect.skipped_non_product, effect.skipped_zero_price) == (1, 0)


def test_lines_are_summed_per_sku_and_sorted() -> None:
    effect = order_effect(
        event(("20B", 1, 10.0), ("10A", 6, 2.55), ("20B", 3, 12.0), ("10A", 2, 2.55))
    )
    assert [item.sku for item in effect.items] == ["10A", "20B"]
    a1, b2 = effect.items
    assert a1.units == 8
    assert a1.value == pytest.approx(8 * 2.55)
    # Different prices for one stock code: values add up line by line.
    assert b2.units == 4
    assert b2.value == pytest.approx(10.0 + 36.0)


def test_purchase_with_valid_lines_counts_as_purchase() -> None:
    assert order_effect(event(("85123A", 1, 1.0))).counts_as_purchase


def test_purchase_of_only_non_products_does_not_count() -> None:
    effect = order_effect(event(("POST", 1, 18.0), ("85123A", 3, 0.0)))
    assert effect.items == ()
    assert not effect.counts_as_purchase
    assert (effect.skipped_non_product, effect.skipped_zero_price) == (1, 1)


def test_returns_are_flagged_with_positive_units() -> None:
    effect = order_effect(event(("85123A", 6, 2.55), ("POST", 1, 18.0), kind="return"))
    assert effect.is_return
    assert not effect.counts_as_purchase
    [item] = effect.items
    assert (item.sku, item.units) == ("85123A", 6)
    assert item.value == pytest.approx(15.3)
    assert effect.skipped_non_product == 1
