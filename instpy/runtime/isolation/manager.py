"""Builds isolation checks for a validated rule batch, outside any lock (stateless checks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from instpy.runtime.isolation.check import IsolationCheck
from instpy.runtime.isolation.rule import IsolationRule


def build(rules: Iterable[IsolationRule],
          previous: Mapping[object, object]) -> dict[str, IsolationCheck]:
    return {rule.resource: IsolationCheck(rule) for rule in rules}
