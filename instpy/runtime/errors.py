"""Errors raised by the governance runtime.

Exception tree::

    Exception
     ├── GovernanceError                 base of everything the engine raises on purpose
     │    └── ConfigError                a governance.yaml (or rule batch) is invalid; carries
     │                                   file, line, field, the problem and how to fix it
     └── RuntimeError
          └── BlockedError               raised for a blocked method-level call whose fallback
                                         names no exception of its own

Blocking itself is not an exception inside the engine: `Engine.entry` returns a `Blocked`
value, because raising and catching per blocked request is far slower than returning.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class of the errors the governance runtime raises deliberately."""


class ConfigError(GovernanceError):
    """An invalid governance configuration: where it is, what is wrong, and how to fix it."""

    def __init__(self, file: str, line: int, field: str, problem: str, fix: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{file}:{line}: {field}: {problem}. Fix: {fix}")


class BlockedError(RuntimeError):
    """A governed method call was blocked and its fallback names no exception to raise.

    Configure `fallback: {raise: "module:ExceptionClass"}` or `fallback: {value: ...}` on the
    resource to answer blocked calls differently.
    """

    def __init__(self, resource: str, family: str) -> None:
        self.resource = resource
        self.family = family
        super().__init__(
            f"call to {resource!r} blocked by instpy governance ({family}); configure a "
            "fallback for this resource in governance.yaml to return a value instead"
        )
