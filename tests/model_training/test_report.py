"""The self-contained HTML training report."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_training.card import SEGMENT_COLUMNS
from model_training.data.cleaning import clean_transactions
from model_training.data.exploration import Exploration, explore
from model_training.data.loading import normalise_frame
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.data.synth import generate_transactions
from model_training.report import write_report

# RFM space, radar, sizes, country, month, orders (weekday + hour), silhouette, RFM histograms
EXPECTED_IMAGES = 8
NAMES = ["Champions <VIP>", "Loyal & steady", "At risk", "New $ customers"]


@pytest.fixture(scope="module")
def exploration() -> Exploration:
    frame = normalise_frame(generate_transactions(150, seed=5).astype(str), "synthetic")
    clean = clean_transactions(frame)
    rfm = compute_rfm(clean, default_reference_time(clean, frame))
    return explore(frame, clean, rfm, rfm[rfm["monetary"] < rfm["monetary"].quantile(0.95)])


def comparison() -> pd.DataFrame:
    rows = [
        {
            "method": method,
            "k": k,
            "silhouette": 0.3 + 0.01 * k,
            "calinski_harabasz": 900.0 * k,
            "davies_bouldin": 0.8 + 0.01 * k,
            "chosen": method == "kmeans" and k == 4,
        }
        for method in ("kmeans", "gaussian_mixture")
        for k in range(3, 7)
    ]
    return pd.DataFrame(rows)


def customers(points: int = 4_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    segment = rng.integers(0, len(NAMES), points)
    return pd.DataFrame(
        {
            "recency_days": rng.integers(0, 370, points),
            "frequency": rng.geometric(0.3, points),
            "monetary": rng.lognormal(6.0, 1.0, points),
            "segment": np.array(NAMES, dtype=object)[segment],
        }
    )


def segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": NAMES,
            "size": [400, 1500, 1300, 800],
            "share": [0.1, 0.375, 0.325, 0.2],
            "revenue_share": [0.55, 0.3, 0.1, 0.05],
            "recency_days": [8.0, 40.0, 210.0, 20.0],
            "recency_days_median": [5.0, 33.0, 190.0, 18.0],
            "frequency": [22.0, 6.0, 2.5, 1.2],
            "frequency_median": [15.0, 5.0, 2.0, 1.0],
            "monetary": [12_500.0, 1_800.0, 450.0, 120.0],
            "monetary_median": [7_300.0, 1_500.0, 380.0, 95.0],
            "action": ["Reward <now>", "Upsell & cross-sell", "Win back", "Onboard"],
        }
    )


def write(path: Path, exploration: Exploration, title: str = "RFM <segments> & more") -> str:
    write_report(
        path,
        title=title,
        summary={"customers": 4_000, "t_ref": datetime(2011, 12, 10), "source": "<script>x"},
        exploration=exploration,
        comparison=comparison(),
        customers=customers(),
        segments=segments(),
        cleaning_counts={"missing_customer_or_description": 135_080, "duplicate_lines": 5_225},
    )
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, exploration: Exploration) -> str:
    """The report of the fixtures above, written once (drawing the charts takes seconds)."""
    return write(tmp_path_factory.mktemp("report") / "deep" / "report.html", exploration)


def test_writes_one_self_contained_page(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == EXPECTED_IMAGES
    assert all('src="data:image/png;base64,' in image for image in images)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page and "url(" not in page


def test_contains_the_tables(page: str) -> None:
    for text in ("135,080", "5,225", "140,305", "missing_customer_or_description"):
        assert text in page  # cleaning counts and their total
    for header in ("silhouette", "Calinski-Harabasz", "Davies-Bouldin", "chosen"):
        assert f"<th>{header}</th>" in page
    assert page.count('<tr class="chosen">') == 1
    assert "gaussian_mixture" in page
    for text in ("Win back", "37.5%", "55.0%", "12,500", "7,300", "1,500"):
        assert text in page  # segment table
    assert "Recency (days)" in page  # describe() tables
    assert "2011-12-10 00:00:00" in page


def test_escapes_text(page: str) -> None:
    assert "<title>RFM &lt;segments&gt; &amp; more</title>" in page
    assert "&lt;script&gt;x" in page
    assert "Champions &lt;VIP&gt;" in page
    assert "Loyal &amp; steady" in page
    assert "Reward &lt;now&gt;" in page
    assert "<VIP>" not in page and "<now>" not in page


def test_empty_inputs_still_render(tmp_path: Path) -> None:
    empty = normalise_frame(
        pd.DataFrame(
            columns=[
                "InvoiceNo",
                "StockCode",
                "Description",
                "Quantity",
                "InvoiceDate",
                "UnitPrice",
                "CustomerID",
                "Country",
            ]
        ),
        "empty",
    )
    clean = clean_transactions(empty)
    rfm = compute_rfm(clean, datetime(2011, 12, 10))
    path = tmp_path / "report.html"
    write_report(
        path,
        title="empty",
        summary={},
        exploration=explore(empty, clean, rfm, rfm),
        comparison=pd.DataFrame(
            columns=["method", "k", "silhouette", "calinski_harabasz", "davies_bouldin", "chosen"]
        ),
        customers=pd.DataFrame(columns=["recency_days", "frequency", "monetary", "segment"]),
        segments=pd.DataFrame(columns=SEGMENT_COLUMNS),
        cleaning_counts={},
    )
    assert path.read_text().count("<img ") == EXPECTED_IMAGES


def _headings(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_segments_come_first_by_share_of_revenue(page: str) -> None:
    assert _headings(page)[0] == "Segments by share of revenue"
    first_table = page[page.index("<h2>Segments") :].split("</table>")[0]
    assert page.index(first_table) < page.index("<h2>Data preparation</h2>")
    assert page.index("<h2>Data preparation</h2>") > page.index("<h2>The model</h2>")
    assert page.index("missing_customer_or_description") > page.index("<h2>Data preparation")
    rows = re.findall(r"<tr><td>([^<]*)</td>", first_table)
    assert rows == ["Champions &lt;VIP&gt;", "Loyal &amp; steady", "At risk", "New $ customers"]
    for head in ("recency, days (median)", "recency, days (mean)", "orders (median)",
                 "spend, £ (mean)", "share of revenue", "marketing action"):  # fmt: skip
        assert f"<th>{head}</th>" in first_table


def test_human_labels_and_sorted_by_revenue(tmp_path: Path, exploration: Exploration) -> None:
    table = segments().assign(
        name=["lost", "champions", "at_risk", "new"],
        revenue_share=[0.05, 0.55, 0.3, 0.1],
    )
    path = tmp_path / "report.html"
    write_report(
        path,
        title="t",
        summary={},
        exploration=exploration,
        comparison=comparison(),
        customers=customers().assign(segment="lost"),
        segments=table,
        cleaning_counts={},
    )
    page = path.read_text(encoding="utf-8")
    first_table = page[page.index("<h2>Segments") :].split("</table>")[0]
    rows = re.findall(r"<tr><td>([^<]*)</td>", first_table)
    assert rows == ["Champions", "At risk", "New customers", "Lost"]


def test_no_caption_repeats_a_chart_title(page: str) -> None:
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) <= 1
    assert "log scale)" not in page  # country revenue is linear


def test_a_partial_last_month_is_noted(page: str, tmp_path: Path, exploration: Exploration) -> None:
    assert exploration.last_line is not None
    month = exploration.last_line.to_period("M")
    assert exploration.last_line.day < month.days_in_month  # the synthetic shop ends on 9 Dec
    assert f"<strong>{month.strftime('%B %Y')} is a partial month</strong>" in page
    whole = replace(exploration, last_line=month.end_time.floor("D"), first_line=None)
    assert "partial month" not in write(tmp_path / "whole.html", whole)
