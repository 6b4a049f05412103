"""What every outbound HTTP client hook shares (requests, urllib3, httpx, aiohttp's client).

Admission marks an admitted call as a governed client call (`http.mark_client`), so a governed
client underneath (urllib3 under requests) does not count it again. The exit hook sends a call
that a lane instance refused (the request never reached it) to `http.route_fallback`'s base
instance while the call is still marked, so the retry is not governed twice and the call's
outcome becomes the retry's; then it unmarks the call and records how it ended.

Each client's own module keeps what is particular to its library: where the method and URL are,
how the routed URL and the propagated headers are put on the request, the response built from
a fallback, and how the same request is sent again. Sharing costs a governed call nothing:
`admit`/`admit_async` take the place of `http.admit_outbound`/`admit_outbound_async` frame for
frame, and `exit_hook`/`exit_hook_async` make each client's `on_exit` itself, so the call
reaches it with no frame in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from instpy.runtime.call import Call
from instpy.runtime.governance import Blocked, HttpFallback
from instpy.runtime.hooks.http import (
    Admission,
    admit_named,
    admit_named_async,
    connection_refused,
    finish,
    mark_client,
    route_fallback,
    unmark_client,
)

# The URL a call was sent to (None: it was not routed, so there is nothing to fall back from).
SentTo = Callable[[Call], "str | None"]
# Send the call's request again, to this base URL; what the library's call would return.
Resend = Callable[[Call, str], Any]
ResendAsync = Callable[[Call, str], Awaitable[Any]]


def admit(call: Call, resource: str) -> HttpFallback | None:
    """Govern one outbound call of a sync client: None when admitted (the call is marked as a
    client call until its exit hook), else the fallback to answer it with."""
    return _admitted(call, admit_named(resource, "outbound", None))


async def admit_async(call: Call, resource: str) -> HttpFallback | None:
    """`admit` for async clients: a throttled call waits with the event loop's sleep."""
    return _admitted(call, await admit_named_async(resource, "outbound", None))


def _admitted(call: Call, outcome: Admission | Blocked) -> HttpFallback | None:
    if isinstance(outcome, Blocked):
        return outcome.http_fallback()
    data = call.data
    data["entry"] = outcome
    data["client"] = mark_client()
    return None


def routed_url(call: Call) -> str | None:
    """`SentTo` of hooks that keep the URL routing chose in `call.data["routed"]` (only when it
    differs from the URL asked for)."""
    url: str | None = call.data.get("routed")
    return url


def _base(call: Call, sent_to: SentTo) -> str | None:
    """Where to send a refused call again: a base instance, when it went to a lane instance."""
    url = sent_to(call)
    return route_fallback(url) if url else None


def exit_hook(status: str, sent_to: SentTo, resend: Resend) -> Callable[[Call], None]:
    """The `on_exit` of a sync client hook; `status` names its response's status attribute."""

    def on_exit(call: Call) -> None:
        token = call.data.get("client")
        if token is None:
            return  # not admitted here: blocked, or inside an outer governed client
        error = call.exception
        if error is not None and connection_refused(error):
            base = _base(call, sent_to)
            if base is not None:
                try:
                    call.return_value = resend(call, base)
                    call.exception = None
                except Exception as exc:  # the base's own failure is the call's outcome
                    call.exception = exc
        unmark_client(token)
        finish(call.data.get("entry"), call.exception, getattr(call.return_value, status, None))

    return on_exit


def exit_hook_async(status: str, sent_to: SentTo,
                    resend: ResendAsync) -> Callable[[Call], Awaitable[None]]:
    """`exit_hook` for async clients: the retry is awaited, and its cancellation too is the
    call's outcome (the call is still unmarked and recorded)."""

    async def on_exit(call: Call) -> None:
        token = call.data.get("client")
        if token is None:
            return
        error = call.exception
        if error is not None and connection_refused(error):
            base = _base(call, sent_to)
            if base is not None:
                try:
                    call.return_value = await resend(call, base)
                    call.exception = None
                except BaseException as exc:
                    call.exception = exc
        unmark_client(token)
        finish(call.data.get("entry"), call.exception, getattr(call.return_value, status, None))

    return on_exit
