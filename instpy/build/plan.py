"""The plan: the output of scan, the only input of inject, readable by people (`instpy scan`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from instpy import __version__

PLAN_FORMAT = 1


@dataclass(frozen=True)
class PlannedTarget:
    """One function to instrument. Several rules on one function share one trampoline."""

    fingerprint: str  # module:qualname
    file: str  # relative to the scanned root, '/'-separated
    line: int
    index: int  # document-order index of the def in its file (see functions.py)
    kind: str  # sync | generator | coroutine | async_generator
    rules: tuple[str, ...]
    on_enter: tuple[str, ...]
    on_exit: tuple[str, ...]
    params: tuple[str, ...]
    keys: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PlannedTarget:
        def strings(key: str) -> tuple[str, ...]:
            value = data[key]
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        return cls(
            fingerprint=str(data["fingerprint"]),
            file=str(data["file"]),
            line=int(str(data["line"])),
            index=int(str(data["index"])),
            kind=str(data["kind"]),
            rules=strings("rules"),
            on_enter=strings("on_enter"),
            on_exit=strings("on_exit"),
            params=strings("params"),
            keys=strings("keys"),
        )


@dataclass(frozen=True)
class Unmatched:
    rule: str
    source: str  # where the rule is defined (path:line)
    reason: str


@dataclass
class Plan:
    root: str
    rules_digest: str
    targets: list[PlannedTarget] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_scanned: int = 0
    files_parsed: int = 0

    def to_json(self) -> str:
        data = {
            "format": PLAN_FORMAT,
            "tool": f"instpy {__version__}",
            "root": self.root,
            "rules_digest": self.rules_digest,
            "files_scanned": self.files_scanned,
            "files_parsed": self.files_parsed,
            "targets": [asdict(t) for t in self.targets],
            "unmatched": [asdict(u) for u in self.unmatched],
            "warnings": self.warnings,
        }
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    def to_text(self) -> str:
        lines = [f"{len(self.targets)} target(s) in {self.root}"]
        for t in self.targets:
            hooks = ", ".join([*(f"enter={h}" for h in t.on_enter),
                               *(f"exit={h}" for h in t.on_exit)])
            lines.append(f"  {t.fingerprint}  {t.file}:{t.line}  [{', '.join(t.rules)}]  {hooks}")
        for u in self.unmatched:
            lines.append(f"unmatched rule {u.rule!r} ({u.source}): {u.reason}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines) + "\n"
