"""Errors of the build side. Every message says what went wrong, why, and how to fix it.

```
BuildError                      anything that stops a build (the CLI prints it, exit status 2)
 ├── RuleError                  an injection-rule file is invalid (file, rule, field, fix)
 ├── CollisionError             user code already uses the reserved `_instpy_` prefix
 └── EmitError                  the output cannot be written (occupied directory, bad wheel)
```
"""

from __future__ import annotations


class BuildError(Exception):
    """Stops the build; the message is shown to the user as is."""


class RuleError(BuildError):
    """An injection rule is invalid."""

    def __init__(
        self,
        path: str,
        line: int | None,
        rule: str | None,
        field: str | None,
        problem: str,
        fix: str,
    ) -> None:
        self.path = path
        self.line = line
        self.rule = rule
        self.field = field
        self.problem = problem
        self.fix = fix
        where = f"{path}:{line}" if line is not None else path
        subject = f"rule {rule!r}" if rule else "rule file"
        if field:
            subject += f", field {field!r}"
        super().__init__(f"{where}: {subject}: {problem}. Fix: {fix}")


class CollisionError(BuildError):
    """A file to be rewritten already uses identifiers with the reserved prefix."""


class EmitError(BuildError):
    """The output cannot be written."""
