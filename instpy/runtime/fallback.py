"""What a blocked or degraded call gets instead of running.

HTTP resources answer with a status, body, content type and headers, or a redirect; method
resources return a value or raise an exception named `module:ExceptionClass`. The exception
class is resolved by importing the module and walking attribute names (never `eval`), on first
use, and it must be an exception class.
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass, field

from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.errors import BlockedError

HTTP_KEYS = ("status", "body", "content_type", "headers", "redirect")
METHOD_KEYS = ("value", "raise", "message")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class HttpFallback:
    """An HTTP answer. With `redirect`, `status` is a 3xx and a Location header is added."""

    status: int = 429
    body: str = "Too Many Requests"
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    redirect: str | None = None

    def response_headers(self) -> list[tuple[str, str]]:
        """Headers to send, Content-Type and Location included."""
        out = [("Content-Type", self.content_type), *self.headers]
        if self.redirect is not None:
            out.append(("Location", self.redirect))
        return out


# The answer of a blocked HTTP call whose resource configures no fallback.
DEFAULT_HTTP_FALLBACK = HttpFallback()


@dataclass(frozen=True)
class MethodFallback:
    """Return `value`, or raise the exception class named by `raise_` (with `message`)."""

    value: object = None
    raise_: str | None = None
    message: str = "blocked by instpy governance"
    _resolved: list[type[BaseException]] = field(default_factory=list, compare=False,
                                                  repr=False)

    def exception(self, resource: str, family: str) -> BaseException:
        """The exception to raise for a blocked call, or BlockedError when none is named."""
        if self.raise_ is None:
            return BlockedError(resource, family)
        if not self._resolved:
            cls = resolve_exception(self.raise_)
            with _RESOLVE_LOCK:
                if not self._resolved:
                    self._resolved.append(cls)
        return self._resolved[0](self.message)


_RESOLVE_LOCK = threading.Lock()

Fallback = HttpFallback | MethodFallback


def resolve_exception(name: str) -> type[BaseException]:
    """Import `module:Qual.Name` and check it is an exception class; explain failures."""
    module_name, _, qualname = name.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"fallback raise {name!r}: cannot import {module_name!r} ({exc}); "
                          "fix the module path in governance.yaml") from exc
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ImportError(f"fallback raise {name!r}: {module_name} has no {qualname!r}; "
                              "fix the class name in governance.yaml")
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise TypeError(f"fallback raise {name!r} is not an exception class; name a class "
                        "derived from Exception")
    return obj


def parse(node: Node, what: str = "fallback") -> Fallback:
    """A fallback mapping: HTTP keys or method keys, never both."""
    fields = v.mapping(node, HTTP_KEYS + METHOD_KEYS, what)
    http = [k for k in fields if k in HTTP_KEYS]
    method = [k for k in fields if k in METHOD_KEYS]
    if http and method:
        raise node.error(f"{what} mixes HTTP keys ({', '.join(http)}) with method keys "
                         f"({', '.join(method)})",
                         "use status/body/content_type/headers/redirect for HTTP resources, "
                         "value or raise for method resources")
    if not http and not method:
        raise node.error(f"{what} is empty", "add status/body/... (HTTP) or value/raise (method)")
    if method:
        return _parse_method(fields, node, what)
    return _parse_http(fields)


def _parse_method(fields: dict[str, Node], node: Node, what: str) -> MethodFallback:
    if "value" in fields and "raise" in fields:
        raise node.error(f"{what} has both `value` and `raise`", "keep only one of them")
    if "message" in fields and "raise" not in fields:
        raise fields["message"].error("`message` only applies with `raise`",
                                      "add `raise:` or remove `message`")
    if "raise" in fields:
        name = v.string(fields["raise"])
        if not _DOTTED.match(name):
            raise fields["raise"].error(f"{name!r} is not a `module:ExceptionClass` name",
                                        'write it like "shop.errors:Unavailable"')
        message = v.string(fields["message"]) if "message" in fields else MethodFallback.message
        return MethodFallback(raise_=name, message=message)
    return MethodFallback(value=_plain(fields["value"]))


def _parse_http(fields: dict[str, Node]) -> HttpFallback:
    redirect = None
    if "redirect" in fields:
        redirect = v.string(fields["redirect"])
        if any(c in redirect for c in "\r\n"):
            raise fields["redirect"].error("the redirect URL contains a line break",
                                           "write the URL on one line")
    default_status = 302 if redirect is not None else 429
    status = (v.integer(fields["status"], minimum=100, maximum=599)
              if "status" in fields else default_status)
    if redirect is not None and status not in _REDIRECT_STATUSES:
        raise fields["status"].error(f"a redirect needs a 3xx status, got {status}",
                                     "use 301, 302, 303, 307 or 308, or drop `status`")
    body = v.string(fields["body"], non_empty=False) if "body" in fields else (
        "" if redirect is not None else HttpFallback.body)
    content_type = (v.string(fields["content_type"]) if "content_type" in fields
                    else HttpFallback.content_type)
    headers: list[tuple[str, str]] = []
    if "headers" in fields:
        hnode = fields["headers"]
        if not isinstance(hnode.value, dict):
            raise hnode.error("`headers` must map header names to values",
                              'write it like {Retry-After: "1"}')
        for name, value_node in hnode.value.items():
            value = value_node.value
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise value_node.error(f"header {name!r} needs a text value",
                                       "quote the value")
            text = str(value)
            if any(c in name + text for c in "\r\n") or not name.strip():
                raise value_node.error(f"header {name!r} has an empty name or a line break",
                                       "use a plain header name and a one-line value")
            headers.append((name, text))
    return HttpFallback(status, body, content_type, tuple(headers), redirect)


def _plain(node: Node) -> object:
    """A YAML value as plain Python data (lists and dicts rebuilt from nodes)."""
    if isinstance(node.value, dict):
        return {k: _plain(c) for k, c in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(c) for c in node.value]
    return node.value
