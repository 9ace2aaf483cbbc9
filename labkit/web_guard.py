"""What a course server on 127.0.0.1 refuses before any of its routes runs.

Listening on 127.0.0.1 keeps other machines out, not other web sites. Any page the student's
browser opens may send requests to http://127.0.0.1:8000, and a site whose name is made to
resolve to 127.0.0.1 (DNS rebinding) can even read the answers, since the browser then takes the
server for that site. Three things tell such requests apart from the student's own:

- `Host` names the address the client believes it is talking to. curl, httpx and the server's
  own page send 127.0.0.1:PORT or localhost:PORT; a rebinding page sends its own name. Any
  other Host gets 421 Misdirected Request on every route: RFC 9110 gives it to a request aimed
  at an authority this server does not answer for, which is exactly what such a request is (a
  400 would call the request malformed, a 403 would say the name is ours but closed).
- `Origin` names the page whose script sent the request. Browsers send it with every POST, and
  with every cross-origin request; programs send none. A foreign page's Origin gets 403.
- A route that changes the server's state takes only `application/json`. A foreign page can
  post text/plain or a form without asking, but a JSON post needs the browser to ask first (a
  CORS preflight), which this server never grants. Anything else gets 415.

Also here: bodies read within a byte limit, and JSON parsed so that nothing in it (nesting
100,000 deep, a number of 5,000 digits) escapes as anything but a one-line 400.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

LOCAL_NAMES = ("127.0.0.1", "localhost")
JSON_TYPE = "application/json"
SAFE_METHODS = ("GET", "HEAD")


class Refused(Exception):
    """A request this server will not serve: an HTTP status and one line that says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _shown(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def own_addresses(port: int | None) -> list[str]:
    """The Host values that name this server: 127.0.0.1:PORT and localhost:PORT (a bare name
    too on port 80, where clients leave the port out)."""
    if port is None:
        return list(LOCAL_NAMES)
    return [f"{name}:{port}" for name in LOCAL_NAMES] + (list(LOCAL_NAMES) if port == 80 else [])


def media_type(content_type: str) -> str:
    """The media type alone, lower case: `application/json; charset=utf-8` -> `application/json`."""
    return content_type.split(";")[0].strip().lower()


def check_request(scope, state_changing: frozenset[str]) -> None:
    """Raise Refused unless the request is addressed to this server, comes from no page or from
    one of its own, and, on a state-changing path, carries JSON."""
    headers = Headers(scope=scope)
    port = (scope.get("server") or (None, None))[1]
    own = own_addresses(port)
    hosts = headers.getlist("host")
    if len(hosts) != 1 or hosts[0].lower() not in own:
        named = f"'{_shown(hosts[0])}'" if len(hosts) == 1 else f"{len(hosts)} Host headers"
        raise Refused(421, f"this server answers only to {' or '.join(own)}; the request was addressed to {named}")
    origins = headers.getlist("origin")
    if origins and (len(origins) > 1 or origins[0].lower() not in {f"http://{address}" for address in own}):
        page = _shown(", ".join(origins))
        raise Refused(403, f"a page at {page} may not use this server; only its own pages at http://{own[0]} may")
    if scope["method"] not in SAFE_METHODS and scope["path"] in state_changing:
        kind = _shown(media_type(headers.get("content-type", "")) or "none")
        if kind != JSON_TYPE:
            raise Refused(415, f"{scope['method']} {scope['path']} takes Content-Type: {JSON_TYPE} only; got '{kind}'")


class SameOriginGuard:
    """ASGI middleware: every HTTP request passes `check_request` first, or gets its 4xx with a
    JSON {"error": ...}. `state_changing`: the paths that take JSON only."""

    def __init__(self, app, *, state_changing=()):
        self.app = app
        self.state_changing = frozenset(state_changing)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            try:
                check_request(scope, self.state_changing)
            except Refused as refused:
                await JSONResponse({"error": str(refused)}, status_code=refused.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_bounded(request, limit: int, drain: int) -> bytes:
    """The body, kept only while it stays within `limit` bytes, whatever Content-Length claims.

    An oversized body is read to its end (up to `drain` bytes) without being kept: a client that
    sends its whole body before reading the answer then gets the 413, not a broken pipe."""
    body, received = bytearray(), 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= limit:
            body += chunk
        elif received > drain:
            break
    if received > limit:
        raise Refused(413, f"the body is over {received - 1:,} bytes; the limit is {limit:,}")
    return bytes(body)


def parse_json(body: bytes, constant_error: str = "{name} is not a number"):
    """The JSON value of `body`; a 400 otherwise, or a 422 with `constant_error` for NaN and
    Infinity (Python reads them, JSON has no such numbers)."""

    def no_constants(name):
        raise Refused(422, constant_error.format(name=name))

    try:
        return json.loads(body, parse_constant=no_constants)
    except RecursionError:
        raise Refused(400, "the JSON body is nested deeper than this server reads") from None
    except json.JSONDecodeError as error:
        raise Refused(400, f"the body is not valid JSON ({error})") from None
    except ValueError as error:  # not UTF-8, or an integer over Python's 4,300 digits
        reason = str(error).split(";")[0].splitlines()[0]
        raise Refused(400, f"the body is not JSON this server can read ({_shown(reason, 120)})") from None
