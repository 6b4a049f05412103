"""A named top-level section of governance.yaml and its one validator.

Adding a section (`lanes:`, `services:`) is one module that defines a `Section` and one line
in `instpy.runtime.config.document.SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from instpy.runtime.config.nodes import Node

T = TypeVar("T")


@dataclass(frozen=True)
class Section(Generic[T]):
    name: str
    parse: Callable[[Node], T]  # validates the whole section or raises ConfigError
    default: T  # the value when the section is absent
    summary: str  # one line for error messages and docs
