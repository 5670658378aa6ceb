"""Bad input ends ``rfm`` with one ``error: ...`` line naming the file and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream_app.cli.main import cli, settings_problem
from stream_app.settings import Settings

REPO = Path(__file__).resolve().parents[3]
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def rfm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stream_app`` (the console script's entry point) in a clean environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("RFM_")}
    # Nothing listens here: a command that reached the broker would fail differently.
    env["RFM_KAFKA_BOOTSTRAP"] = "127.0.0.1:9"
    env["RFM_REDIS_URL"] = "redis://127.0.0.1:9/0"
    return subprocess.run(
        [sys.executable, "-m", "stream_app", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], path: Path) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0]
    return errors[0]


@pytest.fixture
def missing_column(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n"
        "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,United Kingdom\n"
    )
    return path


def test_replay_with_a_missing_column(missing_column: Path) -> None:
    error = assert_one_error_line(rfm("replay", "--input", str(missing_column)), missing_column)
    assert "CustomerID" in error


def test_replay_with_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    error = assert_one_error_line(rfm("replay", "--input", str(path)), path)
    assert "no such file" in error


def test_replay_with_an_unparseable_value(tmp_path: Path) -> None:
    path = tmp_path / "bad_quantity.csv"
    path.write_text(
        f"{HEADER}\n"
        "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536365,71053,LANTERN,six,2010-12-01 08:26:00,3.39,17850,United Kingdom\n"
    )
    error = assert_one_error_line(rfm("replay", "--input", str(path)), path)
    assert "line 3" in error
    assert "Quantity" in error


def test_train_with_a_missing_file(tmp_path: Path) -> None:
    if "train" not in cli.commands:
        pytest.skip("`rfm train` is not registered in stream_app.cli.main")
    path = tmp_path / "missing.csv"
    output = tmp_path / "x"
    result = rfm("train", "--input", str(path), "--output", str(output))
    error = assert_one_error_line(result, path)
    assert "no such file" in error
    assert not (output / "model.joblib").exists()


def _problem(**values: object) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(**values)  # type: ignore[arg-type]
    return settings_problem(raised.value)


def test_a_settings_problem_never_shows_a_password() -> None:
    # A rule across settings names the variables, not their values.
    assert _problem(kafka_sasl_username="rfm", kafka_sasl_password="pw-9d1e") == (
        "RFM_KAFKA_SASL_USERNAME / RFM_KAFKA_SASL_PASSWORD are set but "
        "RFM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL (SASL_PLAINTEXT or SASL_SSL)"
    )
    assert _problem(kafka_sasl_password=["pw-9d1e"]).startswith(
        "RFM_KAFKA_SASL_PASSWORD=**********: "
    )
    shown = _problem(redis_url="http://rfm:pw-9d1e@cache:6379/0")
    assert shown.startswith("RFM_REDIS_URL=http://rfm:***@cache:6379/0: ")


def test_a_sasl_protocol_without_credentials_is_one_error_line() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RFM_")}
    env["RFM_KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL"
    env["RFM_KAFKA_SASL_PASSWORD"] = "pw-9d1e"
    result = subprocess.run(
        [sys.executable, "-m", "stream_app", "segments"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: RFM_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RFM_KAFKA_SASL_USERNAME and "
        "RFM_KAFKA_SASL_PASSWORD"
    ]
    assert "pw-9d1e" not in result.stdout + result.stderr
