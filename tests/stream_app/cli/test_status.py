"""``rfm status`` without servers: an unreachable Redis is one ``error:`` line, exit code 2."""

from __future__ import annotations

import sys
from unittest import mock

from click.testing import CliRunner

from stream_app.cli.main import main
from stream_app.devtools.network import free_port


def test_an_unreachable_redis_is_an_error_line_and_exit_code_2() -> None:
    env = {"RFM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    runner = CliRunner()
    with (
        runner.isolation(env=env) as streams,
        mock.patch.object(sys, "argv", ["rfm", "status", "--json"]),
    ):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        stdout, stderr = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("error: cannot reach Redis at redis://127.0.0.1:")
    assert "RFM_REDIS_URL" in stderr
