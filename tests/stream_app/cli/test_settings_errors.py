"""A wrong ``RFM_*`` value ends every command with one ``error:`` line naming it; exit code 2."""

from __future__ import annotations

import sys
from importlib.metadata import version
from unittest import mock

import pytest
from click.testing import CliRunner

from stream_app.cli.main import cli, main

#: Every command, with the arguments it requires.
COMMANDS = {
    "worker": ["worker"],
    "replay": ["replay", "--input", "history.csv"],
    "bootstrap": ["bootstrap", "--input", "history.csv"],
    "customer": ["customer", "17850"],
    "segments": ["segments"],
    "export": ["export", "--output", "out.csv"],
    "watch": ["watch"],
    "schemas": ["schemas"],
    "clock": ["clock", "show"],
    "dlq": ["dlq", "list"],
    "models": ["models", "list"],
    "retrain": ["retrain"],
    "status": ["status"],
    "serve": ["serve"],
    "stack": ["stack", "up"],
    "demo": ["demo"],
    "train": ["train", "--input", "history.csv", "--output", "model"],
    "synth": ["synth", "--output", "synthetic.csv"],
}

#: A wrong value, and what the error line must say about it.
WRONG = {
    "RFM_CLOCK": ("sometimes", "'event' or 'wall'"),
    "RFM_LOG_FORMAT": ("yaml", "'text' or 'json'"),
    "RFM_TOPIC_PARTITIONS": ("0", "greater than or equal to 1"),
}


def rfm(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the ``rfm`` entry point in-process: exit code, stdout and stderr."""
    runner = CliRunner()
    with runner.isolation(env=env) as (out, err, _), mock.patch.object(sys, "argv", ["rfm", *args]):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue().decode(), err.getvalue().decode()


def test_every_command_is_listed() -> None:
    assert set(COMMANDS) == set(cli.commands)


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("variable", sorted(WRONG))
def test_a_wrong_setting_ends_the_command(name: str, variable: str) -> None:
    value, explanation = WRONG[variable]
    code, out, err = rfm(COMMANDS[name], {variable: value})
    assert code == 2, err
    assert err.splitlines() == [f"error: {variable}={value}: Input should be {explanation}"]
    assert out == ""


def test_train_names_a_wrong_product_pattern() -> None:
    code, _, err = rfm(COMMANDS["train"], {"RFM_NON_PRODUCT_PATTERN": "(["})
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("error: RFM_NON_PRODUCT_PATTERN=([: ")


def test_version_is_the_installed_distribution() -> None:
    code, out, _ = rfm(["--version"], {})
    assert (code, out) == (0, f"rfm, version {version('rfm-segments')}\n")
