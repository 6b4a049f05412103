"""Injection rules: where to inject which hook (`rules/*.yaml` and user rule files).

`load_rules(paths)` reads every rule file, validates the whole set and returns a `RuleSet`; any
problem is a `RuleError` naming the file, line, rule, field and the fix. The format is documented
in docs/injection-rules.md.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from instpy.build.errors import RuleError

FIELDS = (
    "name",
    "module",
    "class",
    "function",
    "match",
    "distribution",
    "versions",
    "on_enter",
    "on_exit",
)
_DOTTED = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")
_IDENT = re.compile(r"[^\W\d]\w*")
_HOOK = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*:[^\W\d]\w*(\.[^\W\d]\w*)*")


@dataclass(frozen=True)
class InjectionRule:
    """One rule. With `regex`, `module`, `cls` and `function` are full-match regular expressions.

    `cls` None means module-level functions only; nested classes are joined by dots
    (`Outer.Inner`), and a function inside a function has the class path `outer.<locals>`.
    """

    name: str
    module: str
    cls: str | None
    function: str
    regex: bool = False
    distribution: str | None = None
    versions: str | None = None
    on_enter: str | None = None
    on_exit: str | None = None
    source: str = field(default="", compare=False)  # path:line, for messages
    _patterns: tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]] | None = field(
        default=None, compare=False, repr=False
    )

    def matches_module(self, module: str) -> bool:
        if self._patterns is not None:
            return self._patterns[0].fullmatch(module) is not None
        return module == self.module

    def matches_function(self, class_path: str, name: str) -> bool:
        if self._patterns is not None:
            return (
                self._patterns[1].fullmatch(class_path) is not None
                and self._patterns[2].fullmatch(name) is not None
            )
        return class_path == (self.cls or "") and name == self.function

    def literal_words(self) -> tuple[str, ...]:
        """Words a file must contain to hold a match (the cheap text pre-filter); () = no filter."""
        if self.regex:
            return ()
        return (self.function,)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "module": self.module,
            "class": self.cls,
            "function": self.function,
            "match": "regex" if self.regex else "exact",
            "distribution": self.distribution,
            "versions": self.versions,
            "on_enter": self.on_enter,
            "on_exit": self.on_exit,
        }


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[InjectionRule, ...]
    files: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """Hash of what the rules say (not where they live): part of every cache key."""
        text = json.dumps([r.as_json() for r in self.rules], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The rule files named by `paths`: files as given, directories' `*.yaml`/`*.yml` sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            found.append(path)
        else:
            raise RuleError(
                str(path), None, None, None, "no such file or directory",
                "pass a rule file or a directory of *.yaml rule files to --rules",
            )
    return found


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load and validate every rule of every file; names must be unique across the set."""
    rules: list[InjectionRule] = []
    seen: dict[str, str] = {}
    files = rule_files(paths)
    for path in files:
        for rule in _load_file(path):
            if rule.name in seen:
                path_s, _, line_s = rule.source.rpartition(":")
                raise RuleError(
                    path_s, int(line_s), rule.name, "name",
                    f"the name is already used by the rule at {seen[rule.name]}",
                    "give every rule a unique name",
                )
            seen[rule.name] = rule.source
            rules.append(rule)
    return RuleSet(tuple(rules), tuple(str(p) for p in files))


def _load_file(path: Path) -> list[InjectionRule]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RuleError(
            str(path), line, None, None, f"not valid YAML ({getattr(exc, 'problem', exc)})",
            "fix the YAML syntax (a rule file is a list of mappings)",
        ) from exc
    if root is None:
        return []
    if not isinstance(root, yaml.SequenceNode):
        raise RuleError(
            str(path), root.start_mark.line + 1, None, None, "the file is not a list of rules",
            "start every rule with '- name: ...' (a YAML list of mappings)",
        )
    return [_parse_rule(path, node) for node in root.value]


def _parse_rule(path: Path, node: yaml.Node) -> InjectionRule:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise RuleError(
            str(path), line, None, None, "a rule must be a mapping of fields",
            "write the rule as 'name: ...', 'module: ...', 'function: ...' under one '-'",
        )
    raw: dict[str, tuple[object, int]] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        raw[key] = (yaml.safe_load(yaml.serialize(value_node)), key_node.start_mark.line + 1)
    name_value = raw.get("name", (None, line))[0]
    name = name_value if isinstance(name_value, str) and name_value else None
    return _RuleBuilder(str(path), line, name, raw).build()


@dataclass
class _RuleBuilder:
    path: str
    line: int
    name: str | None
    raw: dict[str, tuple[object, int]]

    def error(self, fld: str | None, problem: str, fix: str) -> RuleError:
        line = self.raw[fld][1] if fld in self.raw else self.line
        return RuleError(self.path, line, self.name, fld, problem, fix)

    def required(self, fld: str) -> str:
        value = self.text(fld)
        if value is None:
            raise self.error(fld, "the field is missing", f"add '{fld}: ...' to the rule")
        return value

    def text(self, fld: str) -> str | None:
        if fld not in self.raw:
            return None
        value = self.raw[fld][0]
        if not isinstance(value, str) or not value.strip():
            raise self.error(
                fld, f"expected a non-empty string, got {value!r}",
                f"write '{fld}' as text (quote it if YAML reads it as a number or list)",
            )
        return value.strip()

    def build(self) -> InjectionRule:
        for key in self.raw:
            if key not in FIELDS:
                close = difflib.get_close_matches(key, FIELDS, n=1)
                known = ", ".join(FIELDS)
                hint = f"did you mean '{close[0]}'?" if close else f"known fields: {known}"
                raise self.error(key, "unknown field", hint)
        name = self.required("name")
        module = self.required("module")
        function = self.required("function")
        cls = self.text("class")
        match = self.text("match") or "exact"
        if match not in ("exact", "regex"):
            raise self.error("match", f"unknown match mode {match!r}", "use 'exact' or 'regex'")
        regex = match == "regex"
        patterns = self._patterns(module, cls, function) if regex else None
        if not regex:
            self._check_names(module, cls, function)
        distribution = self.text("distribution")
        versions = self.text("versions")
        if versions is not None:
            if distribution is None:
                raise self.error(
                    "versions", "a version range needs the distribution whose version it checks",
                    "add 'distribution: <pip name>' (e.g. flask) or remove 'versions'",
                )
            try:
                SpecifierSet(versions)
            except InvalidSpecifier as exc:
                raise self.error(
                    "versions", f"not a PEP 440 specifier set ({exc})",
                    "write a range such as '>=2.2,<4'",
                ) from exc
        hooks = {h: self.text(h) for h in ("on_enter", "on_exit")}
        for fld, hook in hooks.items():
            if hook is not None and not _HOOK.fullmatch(hook):
                raise self.error(
                    fld, f"{hook!r} is not 'module:callable'",
                    "name the hook as a dotted module, a colon and a callable: mypkg.hooks:enter",
                )
        if hooks["on_enter"] is None and hooks["on_exit"] is None:
            raise self.error(
                None, "the rule names no hook", "add 'on_enter: module:callable' and/or 'on_exit'"
            )
        return InjectionRule(
            name=name, module=module, cls=cls, function=function, regex=regex,
            distribution=distribution, versions=versions, on_enter=hooks["on_enter"],
            on_exit=hooks["on_exit"], source=f"{self.path}:{self.line}", _patterns=patterns,
        )

    def _check_names(self, module: str, cls: str | None, function: str) -> None:
        checks: Sequence[tuple[str, str | None, re.Pattern[str], str]] = (
            ("module", module, _DOTTED, "a dotted module name such as shop.orders"),
            ("class", cls, _DOTTED, "a class name, nested classes joined by dots: Outer.Inner"),
            ("function", function, _IDENT, "a plain function name such as create"),
        )
        for fld, value, pattern, what in checks:
            if value is not None and not pattern.fullmatch(value):
                raise self.error(
                    fld, f"{value!r} is not {what}",
                    "fix the name, or add 'match: regex' to make module/class/function regexes",
                )

    def _patterns(
        self, module: str, cls: str | None, function: str
    ) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
        compiled: list[re.Pattern[str]] = []
        # An omitted class still means "module-level functions only" in regex mode.
        for fld, value in (("module", module), ("class", cls if cls is not None else ""),
                           ("function", function)):
            try:
                compiled.append(re.compile(value))
            except re.error as exc:
                raise self.error(
                    fld, f"invalid regular expression ({exc})",
                    "fix the regex (it must match the whole name), or drop 'match: regex'",
                ) from exc
        return compiled[0], compiled[1], compiled[2]
