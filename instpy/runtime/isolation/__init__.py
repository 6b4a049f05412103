"""Isolation: a cap on concurrent in-flight calls per resource."""

from instpy.runtime.isolation.rule import IsolationRule

__all__ = ["IsolationRule"]
