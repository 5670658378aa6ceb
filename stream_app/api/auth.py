"""Bearer keys (``RFM_API_KEYS``): every path but ``/health`` needs one when keys are set."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from stream_app.api.problems import problem_response

__all__ = ["OPEN_PATHS", "require_key"]

#: Paths answered without a key (load balancers and probes hold none).
OPEN_PATHS = frozenset({"/health"})

Handler = Callable[[Request], Awaitable[Response]]


def require_key(keys: frozenset[str]) -> Callable[[Request, Handler], Awaitable[Response]]:
    """An HTTP middleware that answers 401 unless the request carries one of ``keys``.

    The key comes as ``Authorization: Bearer <key>``, or as ``?key=`` (the page's first load
    and its event stream: a browser's EventSource cannot set headers). Keys are compared in
    constant time and never logged.
    """

    async def middleware(request: Request, call_next: Handler) -> Response:
        if not keys or request.url.path in OPEN_PATHS:
            return await call_next(request)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = request.query_params.get("key", "")
        if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
            return problem_response(
                401,
                "a valid API key is needed: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)

    return middleware
