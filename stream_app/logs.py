"""Where log records go and how they read: ``RFM_LOG_FORMAT`` is ``text`` or ``json``.

``json`` writes one JSON object per line on stderr, with the keys ``time`` (ISO 8601, UTC),
``level``, ``logger`` and ``message``, plus every field a call passed in ``extra=`` (the batch
counts of the worker, for instance), formatted by python-json-logger. ``text`` leaves the
lines as they read without configuration: a worker's are faust's, a command's are Python's
bare warning messages.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

__all__ = ["LogFormat", "configure_logging", "json_formatter", "logging_config"]

LogFormat = Literal["text", "json"]

#: The record attributes a JSON line starts with, and the keys they get.
_JSON_KEYS = {"levelname": "level", "name": "logger", "message": "message"}


def json_formatter() -> JsonFormatter:
    """The formatter of ``RFM_LOG_FORMAT=json``: one JSON object per record.

    >>> import json
    >>> record = logging.LogRecord("rfm", logging.INFO, __file__, 1, "%d applied", (3,), None)
    >>> record.applied = 3
    >>> line = json.loads(json_formatter().format(record))
    >>> {key: line[key] for key in ("level", "logger", "message", "applied")}
    {'level': 'INFO', 'logger': 'rfm', 'message': '3 applied', 'applied': 3}
    >>> line["time"].endswith("+00:00")
    True
    """
    return JsonFormatter(list(_JSON_KEYS), rename_fields=_JSON_KEYS, timestamp="time")


def logging_config(level: int | str) -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` document of JSON lines on stderr at ``level``.

    Every logger propagates to the root (faust's, aiokafka's and ours), so every record ends
    in its one handler. A faust worker takes it as its ``logging_config``.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": json_formatter}},
        # Bound to the stderr of now: a faust worker redirects sys.stderr to a logger next.
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
    }


def configure_logging(log_format: LogFormat, level: int | str = logging.WARNING) -> None:
    """Set the process's log lines up for a command (a worker leaves it to faust).

    Parameters
    ----------
    log_format
        ``text``: nothing changes (warnings and errors print as bare messages); ``json``:
        one JSON object per line on stderr, Python's warnings included.
    level
        The least severe records written in JSON.
    """
    if log_format == "json":
        logging.config.dictConfig(logging_config(level))
        logging.captureWarnings(True)
