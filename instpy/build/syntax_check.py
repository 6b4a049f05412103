"""Is the source a build emits valid for the target's Python? Checked with the target's grammar.

LibCST's native parser reads one grammar, the newest it knows, whatever `PartialParserConfig
(python_version=...)` says (checked with libcst 1.9: `match` parses under "3.8"). So the target's
grammar is this module: the file must parse (newest grammar), and then no construct may be newer
than the target. `_FEATURES` lists the version-gated syntax checked, each with the release that
introduced it; a target newer than the newest entry is checked for parsing only, and the result
says so.

    check_syntax({"pkg/mod.py": b"..."}, (3, 12)) -> SyntaxSummary   or raises SyntaxTargetError
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from instpy.build.errors import BuildError

__all__ = ["NEWEST_CHECKED", "SyntaxSummary", "SyntaxTargetError", "check_syntax"]

# feature -> the first Python version whose grammar has it
_FEATURES: dict[str, tuple[int, int]] = {
    "assignment expression (:=)": (3, 8),
    "positional-only parameters (/)": (3, 8),
    "unparenthesized starred tuple in return/yield": (3, 8),
    "arbitrary decorator expression (PEP 614)": (3, 9),
    "parenthesized context managers": (3, 9),
    "match statement": (3, 10),
    "except*": (3, 11),
    "starred expression in a subscript (PEP 646)": (3, 11),
    "type parameters (PEP 695)": (3, 12),
    "type alias statement (PEP 695)": (3, 12),
    "f-string expression with a backslash, comment or the enclosing quote (PEP 701)": (3, 12),
    "type parameter default (PEP 696)": (3, 13),
    "template string (PEP 750)": (3, 14),
    "except with unparenthesized exception types (PEP 758)": (3, 14),
}
NEWEST_CHECKED = max(_FEATURES.values())


class SyntaxTargetError(BuildError):
    """Emitted source uses syntax the target's Python does not have (file:line each)."""


@dataclass(frozen=True)
class SyntaxSummary:
    version: str  # the grammar checked against, "3.12"
    files: int
    note: str  # empty, or why the check is weaker than the target's grammar


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    feature: str
    since: tuple[int, int]


class _Finder(cst.CSTVisitor):
    """Collects every construct newer than `target`; keeps the file name and the findings."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, file: str, target: tuple[int, int]) -> None:
        super().__init__()
        self.file = file
        self.target = target
        self.found: list[Violation] = []

    def _flag(self, node: cst.CSTNode, feature: str) -> None:
        since = _FEATURES[feature]
        if since > self.target:
            line = self.get_metadata(PositionProvider, node).start.line
            self.found.append(Violation(self.file, line, feature, since))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._flag(node, "assignment expression (:=)")

    def visit_Parameters(self, node: cst.Parameters) -> None:
        if node.posonly_params or node.posonly_ind is not cst.MaybeSentinel.DEFAULT:
            self._flag(node, "positional-only parameters (/)")

    def _starred_tuple(self, value: cst.BaseExpression | None) -> bool:
        return (isinstance(value, cst.Tuple) and not value.lpar
                and any(isinstance(e, cst.StarredElement) for e in value.elements))  # fmt: skip

    def visit_Return(self, node: cst.Return) -> None:
        if self._starred_tuple(node.value):
            self._flag(node, "unparenthesized starred tuple in return/yield")

    def visit_Yield(self, node: cst.Yield) -> None:
        if not isinstance(node.value, cst.From) and self._starred_tuple(node.value):
            self._flag(node, "unparenthesized starred tuple in return/yield")

    def visit_Decorator(self, node: cst.Decorator) -> None:
        expr = node.decorator.func if isinstance(node.decorator, cst.Call) else node.decorator
        if not _dotted_name(expr):
            self._flag(node, "arbitrary decorator expression (PEP 614)")

    def visit_With(self, node: cst.With) -> None:
        # `with (a):` is a parenthesized expression in every grammar; items or `as` are not.
        if isinstance(node.lpar, cst.LeftParen) and (
            len(node.items) > 1 or node.items[0].asname is not None
        ):
            self._flag(node, "parenthesized context managers")

    def visit_Match(self, node: cst.Match) -> None:
        self._flag(node, "match statement")

    def visit_TryStar(self, node: cst.TryStar) -> None:
        self._flag(node, "except*")

    def visit_SubscriptElement(self, node: cst.SubscriptElement) -> None:
        index = node.slice
        if isinstance(index, cst.Index) and index.star is not None:
            self._flag(node, "starred expression in a subscript (PEP 646)")

    def visit_TypeParameters(self, node: cst.TypeParameters) -> None:
        self._flag(node, "type parameters (PEP 695)")

    def visit_TypeParam(self, node: cst.TypeParam) -> None:
        if node.default is not None:
            self._flag(node, "type parameter default (PEP 696)")

    def visit_TypeAlias(self, node: cst.TypeAlias) -> None:
        self._flag(node, "type alias statement (PEP 695)")

    def visit_TemplatedString(self, node: cst.TemplatedString) -> None:
        self._flag(node, "template string (PEP 750)")

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if isinstance(node.type, cst.Tuple) and not node.type.lpar:
            self._flag(node, "except with unparenthesized exception types (PEP 758)")

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        quote = node.start.lstrip("rRbBfFuU")
        for part in node.parts:
            if not isinstance(part, cst.FormattedStringExpression):
                continue
            code = cst.Module([]).code_for_node(part.expression)
            triple = len(quote) == 3
            if "\\" in code or "#" in _outside_strings(code) or quote in code or (
                not triple and "\n" in code
            ):
                self._flag(node, "f-string expression with a backslash, comment or the "
                           "enclosing quote (PEP 701)")  # fmt: skip
                return


def _dotted_name(expr: cst.BaseExpression) -> bool:
    while isinstance(expr, cst.Attribute):
        expr = expr.value
    return isinstance(expr, cst.Name)


_STRING_RE = re.compile(r"('''|\"\"\"|'|\")(?:\\.|(?!\1).)*\1", re.S)


def _outside_strings(code: str) -> str:
    return _STRING_RE.sub("", code)


def check_syntax(files: Mapping[str, bytes], target: tuple[int, int]) -> SyntaxSummary:
    """Parse each file and find syntax newer than `target`; raise listing every file:line."""
    violations: list[Violation] = []
    for name in sorted(files):
        try:
            module = cst.parse_module(files[name])
        except cst.ParserSyntaxError as exc:
            raise SyntaxTargetError(
                f"{name}:{exc.raw_line}: the emitted file does not parse ({exc.message}); "
                "this is a bug in the rewrite or in the package: report it with the file"
            ) from None
        finder = _Finder(name, target)
        MetadataWrapper(module, unsafe_skip_copy=True).visit(finder)
        violations += finder.found
    version = f"{target[0]}.{target[1]}"
    if violations:
        shown = "\n".join(
            f"  {v.file}:{v.line}: {v.feature} needs Python {v.since[0]}.{v.since[1]}"
            for v in violations[:20]
        )
        more = f"\n  ... and {len(violations) - 20} more" if len(violations) > 20 else ""
        raise SyntaxTargetError(
            f"the build emitted syntax newer than the target's Python {version}:\n{shown}{more}\n"
            "what to do: target a newer Python (--target-python), or use a version of the "
            "package that supports the target's Python; the output folder is incomplete"
        )
    note = ""
    if target > NEWEST_CHECKED:
        newest = f"{NEWEST_CHECKED[0]}.{NEWEST_CHECKED[1]}"
        note = (f"Python {version} is newer than the newest grammar checked ({newest}): the "
                f"files were checked to parse and for syntax up to {newest} only")  # fmt: skip
        version = newest
    return SyntaxSummary(version, len(files), note)
