"""urllib3 outbound governance (urllib3 >=2,<3).

Choke point: `urllib3.connectionpool:HTTPConnectionPool.urlopen` (HTTPS pools inherit it). Every
request urllib3 sends goes through a pool's `urlopen`: `PoolManager.request/urlopen` (one call
per redirect hop, each with its final host), `ProxyManager`, pools used directly
(`HTTPConnectionPool("host").request(...)`) and libraries built on urllib3 such as requests.
`PoolManager.urlopen` would miss pools used directly. The pool retries and, with
`redirect=True`, follows redirects by calling `urlopen` again: those inner calls run while this
hook has marked the context, so one call of the caller counts once; likewise a request made
through requests is governed by the requests hook alone (`http.nested_client`).

A blocked or degraded call is answered with an `urllib3.response.HTTPResponse` built from the
fallback (`.status`, `.headers`, `.data`, `.read()`, `.stream()`, `.json()` work as usual) and
the dependency is never contacted.

Lanes: the resource names the URL asked for (the service); `http.route` then picks an instance
of the request's lane, else base. A pool is bound to one host, so a call routed elsewhere runs
its `urlopen` body on a pool for the routed host instead (the rebound `self`): one per original
pool and routed address, created on first use with the original pool's class and settings
(timeout, retries, headers, size, proxy, TLS), kept while the original pool lives. A forward
proxy's pool (the URL names the destination, not the pool's host) just gets the routed URL. When
a lane instance refuses the connection, the exit hook (`client.exit_hook`) sends the same request
through the pool of the base instance, and the call's outcome becomes the retry's.
"""

from __future__ import annotations

import io
import threading
import weakref
from typing import Any
from urllib.parse import urlsplit

from urllib3._collections import HTTPHeaderDict
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse, HTTPResponse

from instpy.runtime.call import Call
from instpy.runtime.governance import HttpFallback
from instpy.runtime.hooks.client import admit, exit_hook, routed_url
from instpy.runtime.hooks.http import (
    nested_client,
    outbound_resource,
    outgoing_headers,
    reason,
    route,
)

DISTRIBUTION = "urllib3"
VERSIONS = ">=2,<3"

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(pool: Any) -> str:
    host: str = pool.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # the pool keeps IPv6 literals without brackets
    port = pool.port
    if port is None or port == _DEFAULT_PORTS.get(pool.scheme):
        return f"{pool.scheme}://{host}"
    return f"{pool.scheme}://{host}:{port}"


# Pools for routed addresses, per original pool: {original: {"host:port": pool}}.
_ROUTED: weakref.WeakKeyDictionary[HTTPConnectionPool, dict[str, HTTPConnectionPool]] = (
    weakref.WeakKeyDictionary())
_ROUTED_LOCK = threading.Lock()
_TLS = ("key_file", "cert_file", "cert_reqs", "key_password", "ca_certs", "ca_cert_dir",
        "ssl_version", "ssl_minimum_version", "ssl_maximum_version", "assert_hostname",
        "assert_fingerprint")


def _like(pool: HTTPConnectionPool, host: str, port: int | None) -> HTTPConnectionPool:
    """A new pool for host:port with `pool`'s class and settings."""
    kw: dict[str, Any] = dict(pool.conn_kw)
    if isinstance(pool, HTTPSConnectionPool):
        kw.update((name, getattr(pool, name)) for name in _TLS)
    queue = pool.pool
    return type(pool)(
        host, port, timeout=pool.timeout, maxsize=queue.maxsize if queue is not None else 1,
        block=pool.block, headers=pool.headers, retries=pool.retries, _proxy=pool.proxy,
        _proxy_headers=pool.proxy_headers, _proxy_config=pool.proxy_config, **kw,
    )


def _pool_for(pool: HTTPConnectionPool, url: str) -> HTTPConnectionPool:
    """The pool that sends `pool`'s calls routed to `url`'s host."""
    netloc = urlsplit(url).netloc
    pools = _ROUTED.get(pool)
    found = pools.get(netloc) if pools is not None else None
    if found is None:
        parts = urlsplit(url)
        with _ROUTED_LOCK:
            pools = _ROUTED.setdefault(pool, {})
            found = pools.get(netloc)
            if found is None:
                found = pools[netloc] = _like(pool, parts.hostname or "", parts.port)
    return found


def _answer(method: str, url: str, fallback: HttpFallback, params: dict[str, Any]) -> HTTPResponse:
    body = fallback.body.encode("utf-8")
    headers = HTTPHeaderDict()
    for name, value in fallback.response_headers():
        headers.add(name, value)
    headers["Content-Length"] = str(len(body))
    return HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=fallback.status, version=11,
        reason=reason(fallback.status), preload_content=params["preload_content"],
        decode_content=params["decode_content"], request_method=method, request_url=url,
    )


def on_enter(call: Call) -> None:
    if nested_client():
        return  # an outer governed client (requests, or this pool's own retry) counts the call
    params = call.params
    pool: HTTPConnectionPool = params["self"]
    url: str = params["url"]
    relative = url.startswith("/")
    full = _origin(pool) + url if relative else url
    method: str = params["method"]
    resource = outbound_resource(method, full)  # before routing: resources name services
    routed = route(full)
    if routed != full:
        call.data["pool"] = pool
        call.data["routed"] = routed
        if relative or pool.is_same_host(url):  # the pool is bound to the service's host
            params["self"] = _pool_for(pool, routed)
        if not relative:  # (a forward proxy's pool takes the destination in the URL)
            params["url"] = routed
        full = routed
    extra = outgoing_headers()
    if extra:
        headers = params["headers"]
        merged = HTTPHeaderDict(headers if headers is not None else pool.headers)
        for name, value in extra:
            merged[name] = value
        params["headers"] = merged
    fallback = admit(call, resource)
    if fallback is not None:
        call.skip(_answer(method, full, fallback, params))


def _resend(call: Call, base: str) -> BaseHTTPResponse:
    """The same request through the pool of the base instance (or the forward proxy's pool)."""
    params = call.params
    pool: HTTPConnectionPool = call.data["pool"]
    url: str = params["url"]
    if url.startswith("/"):
        target = _pool_for(pool, base)
    else:
        target = params["self"] if params["self"] is pool else _pool_for(pool, base)
        url = base
    kwargs = {k: v for k, v in params.items() if k not in ("self", "method", "url", "response_kw")}
    kwargs.update(params["response_kw"])
    response: BaseHTTPResponse = target.urlopen(params["method"], url, **kwargs)
    return response


on_exit = exit_hook("status", routed_url, _resend)
