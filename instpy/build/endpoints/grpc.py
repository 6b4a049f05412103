"""gRPC: classes subclassing `<Service>Servicer` from a `*_pb2_grpc` module. The service's full
name and RPCs come from that module's generated method paths, else from a `.proto` in the tree."""

from __future__ import annotations

import ast
import re

from instpy.build.endpoints.model import GRPC_METHOD
from instpy.build.endpoints.modules import Module
from instpy.build.endpoints.scan import Scan
from instpy.build.endpoints.walk import Recognisers

_METHOD_PATH = re.compile(r"/((?:\w+\.)*)(\w+)/(\w+)\Z")


def _servicer_class(s: Scan, mod: Module, cls: ast.ClassDef) -> None:
    for base in cls.bases:
        qual = s.qualname(mod, base)
        if qual is None or "." not in qual:
            continue
        grpc_mod, _, base_name = qual.rpartition(".")
        if not (base_name.endswith("Servicer") and grpc_mod.endswith("_pb2_grpc")):
            continue
        service = base_name.removesuffix("Servicer")
        full, rpcs = _service(s, grpc_mod, service)
        if full is None:
            s.warn(
                mod, cls, f"package of gRPC service {service!r} unknown ({grpc_mod} "
                "and no .proto for it in the tree): names assume no package",
            )  # fmt: skip
            full = service
        for fn in cls.body:
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            # Without the generated RPC list, every public method is taken for an RPC.
            if fn.name in rpcs if rpcs else not fn.name.startswith("_"):
                cid = s.container(f"{mod.rel}:{cls.name}", "grpc")
                s.route(mod, fn, cid, "grpc", [GRPC_METHOD], f"/{full}/{fn.name}",
                        f"{cls.name}.{fn.name}")  # fmt: skip


def _service(s: Scan, grpc_mod: str, service: str) -> tuple[str | None, set[str]]:
    """The service's full name and RPCs: generated method paths, else a .proto, else None."""
    gen = s.find_module(grpc_mod)
    if gen is not None:
        rpcs: set[str] = set()
        full: str | None = None
        for node in ast.walk(gen.tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                m = _METHOD_PATH.match(node.value)
                if m and m.group(2) == service:
                    full = f"{m.group(1)}{service}"
                    rpcs.add(m.group(3))
        if full is not None:
            return full, rpcs
    if service in s.protos:
        package, proto_rpcs = s.protos[service]
        return (f"{package}.{service}" if package else service), proto_rpcs
    return None, set()


FAMILY = Recognisers(classes=(_servicer_class,))
