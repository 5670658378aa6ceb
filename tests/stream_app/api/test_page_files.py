"""The live page's files are package data, and every asset it loads is there (no CDN)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

STATIC = Path(str(files("stream_app.api").joinpath("static")))


def _assets() -> list[str]:
    return re.findall(r'"/static/([\w.]+)"', (STATIC / "index.html").read_text())


def test_the_page_loads_only_its_own_files_and_plotly() -> None:
    assets = _assets()
    assert {"page.css", "plotly.min.js", "page.js"} <= set(assets)
    for name in assets:
        if name == "plotly.min.js":  # served from the installed plotly package
            assert files("plotly").joinpath("package_data", name).is_file()
        else:
            assert (STATIC / name).is_file(), name


def test_no_file_of_the_page_points_outside_the_service() -> None:
    for path in STATIC.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path.name
        assert "https://" not in text and "http://" not in text, path.name
