"""Bearer keys (``RFM_API_KEYS``): every path but the probe and the page's own files needs one
when keys are set."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from stream_app.api.problems import problem_response

__all__ = ["OPEN_PATHS", "RequireKey", "is_open"]

#: Paths answered without a key: the probe (load balancers hold none) and the page's shell,
#: which holds no customer data (every figure it shows comes from a guarded ``/v1/`` call), so
#: that a reload without ``?key=`` still loads.
OPEN_PATHS = frozenset({"/health", "/"})

#: Prefix of the page's static files (scripts, styles, plotly), open like the page itself.
STATIC_PREFIX = "/static/"


def is_open(path: str) -> bool:
    """Whether ``path`` is answered without a key.

    >>> is_open("/static/page.js"), is_open("/"), is_open("/v1/segments")
    (True, True, False)
    """
    return path in OPEN_PATHS or path.startswith(STATIC_PREFIX)


class RequireKey:
    """ASGI middleware that answers 401 unless the request carries one of ``keys``.

    The key comes as ``Authorization: Bearer <key>``, or as ``?key=`` (the page's first load
    and its event stream: a browser's EventSource cannot set headers). Keys are compared in
    constant time and never logged. No keys: everything passes.
    """

    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.keys or scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self._given(scope) is None:
            answer = problem_response(
                401,
                "a valid API key is needed: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _given(self, scope: Scope) -> bytes | None:
        """The matching key the request carries, or None."""
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    given = b""
                break
        if not given and scope.get("query_string"):
            query = parse_qs(scope["query_string"].decode("latin-1"))
            given = query.get("key", [""])[0].encode()
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(given, key)
        return given if matched and given else None
