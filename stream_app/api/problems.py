"""Errors as RFC 9457 problem details: one JSON shape, never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from model_training.exceptions import ModelArtifactError
from stream_app.api.models import Problem
from stream_app.exceptions import StoreUnavailableError

__all__ = ["PROBLEM_TYPE", "ApiProblem", "install_problem_handlers", "problem_response"]

log = logging.getLogger(__name__)

#: The media type of every error body.
PROBLEM_TYPE = "application/problem+json"


class ApiProblem(Exception):
    """An answer other than success, with what to tell the client."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem-details response with ``status`` and ``detail``."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        return problem_response(exc.status, exc.detail, exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem_response(
            exc.status_code, str(exc.detail), dict(exc.headers) if exc.headers else None
        )

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = [
            f"{'.'.join(str(step) for step in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:3]
        ]
        return problem_response(422, "; ".join(parts) or "invalid request")

    async def on_store(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis unavailable answering %s: %s", request.url.path, exc)
        return problem_response(503, "the customer store (Redis) does not answer; try again")

    async def on_model(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(404, str(exc))

    async def on_other(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error answering %s", request.url.path)
        return problem_response(500, "internal error (see the server log)")

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(StoreUnavailableError, on_store)
    app.add_exception_handler(ModelArtifactError, on_model)
    app.add_exception_handler(Exception, on_other)
