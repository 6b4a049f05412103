"""The request's lane tag, and the headers that carry it from service to service.

The tag lives in a ContextVar: each thread, asyncio task and gRPC handler sees its own. It leaves
on every outbound call as `x-mse-tag: TAG` (MSE compatibility) and as a W3C `baggage` member
`x-mse-tag=TAG`; a downstream service reads either.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

TAG_HEADER = "x-mse-tag"
BAGGAGE_HEADER = "baggage"
BAGGAGE_KEY = "x-mse-tag"

_TAG: ContextVar[str | None] = ContextVar("instpy_lane_tag", default=None)


def current_tag() -> str | None:
    return _TAG.get()


def set_tag(tag: str | None) -> None:
    """Set for the rest of this request (servers call it for every request, so a reused worker
    thread never carries a previous request's tag)."""
    _TAG.set(tag)


def tag_from_headers(header: Callable[[str], str | None]) -> str | None:
    """The tag an upstream service sent, from `x-mse-tag` or the `baggage` header."""
    direct = header(TAG_HEADER)
    if direct:
        return str(direct).strip() or None
    baggage = header(BAGGAGE_HEADER)
    if not baggage:
        return None
    for member in str(baggage).split(","):
        key, sep, value = member.partition("=")
        if sep and key.strip() == BAGGAGE_KEY:
            return value.split(";", 1)[0].strip() or None
    return None


def headers_for(tag: str | None) -> list[tuple[str, str]]:
    if tag is None:
        return []
    return [(TAG_HEADER, tag), (BAGGAGE_HEADER, f"{BAGGAGE_KEY}={tag}")]
