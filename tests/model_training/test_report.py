"""The self-contained HTML training report."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_training.data.cleaning import clean_transactions
from model_training.data.exploration import Exploration, explore
from model_training.data.loading import normalise_frame
from model_training.data.rfm import compute_rfm, default_reference_time
from model_training.data.synth import generate_transactions
from model_training.report import write_report

# country, month, orders (weekday + hour), RFM histograms, silhouette, 2-D, radar, sizes
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


def view2d(points: int = 4_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    segment = rng.integers(0, len(NAMES), points)
    return pd.DataFrame(
        {
            "x": rng.normal(segment * 2.0, 0.7),
            "y": rng.normal(segment % 2, 0.7),
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
            "frequency": [22.0, 6.0, 2.5, 1.2],
            "monetary": [12_500.0, 1_800.0, 450.0, 120.0],
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
        view2d=view2d(),
        segments=segments(),
        cleaning_counts={"missing_customer_or_description": 135_080, "duplicate_lines": 5_225},
    )
    return path.read_text(encoding="utf-8")


def test_writes_one_self_contained_page(tmp_path: Path, exploration: Exploration) -> None:
    page = write(tmp_path / "deep" / "report.html", exploration)
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) == EXPECTED_IMAGES
    assert all('src="data:image/png;base64,' in image for image in images)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page and "url(" not in page


def test_contains_the_tables(tmp_path: Path, exploration: Exploration) -> None:
    page = write(tmp_path / "report.html", exploration)
    for text in ("135,080", "5,225", "140,305", "missing_customer_or_description"):
        assert text in page  # cleaning counts and their total
    for header in ("silhouette", "Calinski-Harabasz", "Davies-Bouldin", "chosen"):
        assert f"<th>{header}</th>" in page
    assert page.count('<tr class="chosen">') == 1
    assert "gaussian_mixture" in page
    for text in ("Win back", "37.5%", "55.0%", "12,500.00", "1,500"):
        assert text in page  # segment table
    assert "Recency (days)" in page  # describe() tables
    assert "2011-12-10 00:00:00" in page


def test_escapes_text(tmp_path: Path, exploration: Exploration) -> None:
    page = write(tmp_path / "report.html", exploration)
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
        view2d=pd.DataFrame(columns=["x", "y", "segment"]),
        segments=pd.DataFrame(
            columns=[
                "name",
                "size",
                "share",
                "revenue_share",
                "recency_days",
                "frequency",
                "monetary",
                "action",
            ]
        ),
        cleaning_counts={},
    )
    assert path.read_text().count("<img ") == EXPECTED_IMAGES
