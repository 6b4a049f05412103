"""What the HTTP hooks share: resource names, error classification and the blocked answer.

Resource names are a user interface (docs/architecture.md): inbound `METHOD route-template`,
outbound `METHOD scheme://host[:port]/path` (no query string, so one resource per endpoint of
the dependency, not per request).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from instpy.runtime.governance import Blocked, Entry, HttpFallback, engine

Lookup = Callable[[str, str], object]


def outbound_resource(method: str, url: str) -> str:
    """`GET http://service-b/greet1b` for `GET http://service-b/greet1b?x=1`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{method.upper()} {parts.scheme}://{parts.netloc}{path}"


def is_error_status(status: int) -> bool:
    """A 5xx is a failure of the callee; 4xx are the caller's (Sentinel counts them as passes)."""
    return status >= 500


def reason(status: int) -> str:
    """The standard reason phrase, or an empty one for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def admit(resource: str, traffic: str, lookup: Lookup | None = None) -> Entry | HttpFallback:
    """Govern one HTTP call: the Entry to exit afterwards, or the answer of a blocked call."""
    result = engine().entry(resource, traffic, lookup)
    if isinstance(result, Blocked):
        return result.http_fallback()
    return result


def finish(entry: Entry | None, exception: BaseException | None, status: int | None) -> None:
    """Record how the call ended: an exception, else the status code."""
    if entry is None:
        return
    if exception is not None:
        entry.exit(exception)
    else:
        entry.exit(status is not None and is_error_status(status))
