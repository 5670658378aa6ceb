"""``rfm segments``: counts per segment, shown by the segments' human labels."""

from __future__ import annotations

from collections import Counter
from unittest import mock

from click.testing import CliRunner

from stream_app.cli import stream


def test_segments_show_human_labels() -> None:
    counts = Counter({"cant_lose_them": 3, "champions": 5, "segment_7": 2})
    with (
        mock.patch.object(stream, "current_settings"),
        mock.patch.object(stream, "_with_store", return_value=counts),
    ):
        result = CliRunner().invoke(stream.segments, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line[:20].rstrip() for line in lines[1:]] == [
        "Champions",
        "Can't lose them",
        "segment_7",
        "total",
    ]
    assert "50.0%" in lines[1]
