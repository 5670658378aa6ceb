"""``rfm bootstrap`` and ``rfm export`` through the command line, against the tests' Redis."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from click.testing import CliRunner

from stream_app.cli.main import main
from stream_app.store.redis_store import RedisStore

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
ROWS = [
    "536365,85123A,HEART,6,2011-05-01 10:00:00,2.55,17850,United Kingdom",
    "536365,POST,POSTAGE,1,2011-05-01 10:00:00,18.00,17850,United Kingdom",
    "536366,22423,CAKESTAND,1,2011-12-09 12:50:00,12.75,12347,Iceland",
]
CLOCK = "2011-12-09T12:50:00"


def rfm(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the ``rfm`` entry point (errors included) in-process; exit code and stderr."""
    runner = CliRunner()
    with runner.isolation(env=env) as streams, mock.patch.object(sys, "argv", ["rfm", *args]):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        stderr = streams[1].getvalue().decode()
    return code, stderr


@pytest.fixture
def env(private_redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "RFM_REDIS_URL": private_redis_url,
        "RFM_KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}",
        "RFM_MODEL_DIR": str(tmp_path / "model"),
        "RFM_CLOCK": "event",
    }


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def monetary_of(env: dict[str, str], customer: str) -> float:
    async def read() -> float:
        async with RedisStore.from_url(env["RFM_REDIS_URL"], prefix=env["RFM_KEY_PREFIX"]) as store:
            state = await store.get(customer)
            assert state is not None
            return state.monetary

    return asyncio.run(read())


def test_bootstrap_uses_the_configured_product_rule(env: dict[str, str], history: Path) -> None:
    assert rfm(["bootstrap", "--input", str(history)], env)[0] == 0
    assert monetary_of(env, "17850") == pytest.approx(6 * 2.55)

    postage_counts = {**env, "RFM_KEY_PREFIX": env["RFM_KEY_PREFIX"] + "p"}
    postage_counts["RFM_NON_PRODUCT_PATTERN"] = "BANK.*"
    assert rfm(["bootstrap", "--input", str(history)], postage_counts)[0] == 0
    assert monetary_of(postage_counts, "17850") == pytest.approx(6 * 2.55 + 18.0)


def test_export_at_or_after_the_stream_clock(
    env: dict[str, str], history: Path, tmp_path: Path
) -> None:
    assert rfm(["bootstrap", "--input", str(history)], env)[0] == 0
    for t_ref, recency in ((None, 0), (CLOCK, 0), ("2011-12-10", 0), ("2012-01-09", 30)):
        output = tmp_path / f"export-{t_ref}.csv"
        args = ["export", "--output", str(output)] + (["--t-ref", t_ref] if t_ref else [])
        code, stderr = rfm(args, env)
        assert code == 0, stderr
        table = pd.read_csv(output, dtype={"customer_id": str}).set_index("customer_id")
        assert table.loc["12347", "recency_days"] == recency, t_ref
        assert (table["recency_days"] >= 0).all()


def test_export_before_the_stream_clock_is_one_error_line(
    env: dict[str, str], history: Path, tmp_path: Path
) -> None:
    assert rfm(["bootstrap", "--input", str(history)], env)[0] == 0
    output = tmp_path / "export.csv"
    code, stderr = rfm(["export", "--output", str(output), "--t-ref", "2011-06-01"], env)
    assert code == 2
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "2011-06-01T00:00:00" in errors[0] and CLOCK in errors[0]
    assert "before the stream clock" in errors[0] and "rfm train --t-ref" in errors[0]
    assert not output.exists()
