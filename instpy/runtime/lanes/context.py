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

# The request's tag. Hooks on the hottest paths read and clear it directly (see set_tag).
TAG: ContextVar[str | None] = ContextVar("instpy_lane_tag", default=None)


def current_tag() -> str | None:
    return TAG.get()


def set_tag(tag: str | None) -> None:
    """Set for the rest of this request (servers call it for every request, so a reused worker
    thread never carries a previous request's tag). Setting None where nothing is set is
    skipped: most requests carry no tag, and a read is cheaper than a write."""
    if tag is not None or TAG.get() is not None:
        TAG.set(tag)


def tag_from_headers(header: Callable[[str], str | None]) -> str | None:
    """The tag an upstream service sent, from `x-mse-tag` or the `baggage` header."""
    return tag_from(header(TAG_HEADER), header(BAGGAGE_HEADER))


def tag_from(direct: object, baggage: object) -> str | None:
    """The tag from the values of the `x-mse-tag` and `baggage` headers (None: absent); for
    hooks that read both headers their own cheapest way (a WSGI environ, an ASGI header list)."""
    if direct:
        return str(direct).strip() or None
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
