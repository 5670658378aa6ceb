"""Errors raised by the batch pipeline."""

from __future__ import annotations

__all__ = [
    "InvalidInputError",
    "ModelArtifactError",
    "ModelTrainingError",
    "RFMError",
]


class RFMError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInputError(RFMError):
    """A transactions file cannot be used.

    The message names the file and, where it applies, the line and column. Fix the file (or
    pass the right one) and run the command again.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.problem = problem
        self.line = line
        self.column = column
        where = path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class ModelTrainingError(RFMError):
    """The data cannot produce a model (too few customers, too few distinct profiles, ...)."""


class ModelArtifactError(RFMError):
    """A saved model cannot be trusted: missing, corrupt, or built with incompatible libraries.

    Retrain with ``rfm train`` using the installed versions, or install the versions the
    message names.
    """
