"""Injection-rule validation: every error names file, line, rule, field and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from instpy.build.errors import RuleError
from instpy.build.rules import load_rules

GOOD = """\
- name: orders-create
  module: shop.orders
  class: OrderService
  function: create
  distribution: shop
  versions: ">=1.0,<3"
  on_enter: mypkg.hooks:enter
  on_exit: mypkg.hooks:exit
"""


def _load(tmp_path: Path, text: str) -> RuleError:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path])
    return info.value


def test_good_rule_loads(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD, encoding="utf-8")
    rules = load_rules([tmp_path])
    (rule,) = rules.rules
    assert rule.matches_module("shop.orders") and rule.matches_function("OrderService", "create")
    assert not rule.matches_function("", "create")
    assert len(rules.digest) == 64


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        (GOOD.replace("function: create", "functon: create"), 4, "functon",
         "did you mean 'function'"),
        (GOOD.replace("  function: create\n", ""), 1, "function", "add 'function: ...'"),
        (GOOD.replace('">=1.0,<3"', '"~=banana"'), 6, "versions", "PEP 440"),
        (GOOD.replace("  distribution: shop\n", ""), 5, "versions", "add 'distribution:"),
        (GOOD.replace("mypkg.hooks:enter", "mypkg.hooks.enter"), 7, "on_enter", "module:callable"),
        (GOOD.replace("class: OrderService", "class: Order-Service"), 3, "class", "match: regex"),
        (GOOD + "  match: fuzzy\n", 9, "match", "'exact' or 'regex'"),
        (GOOD.replace("function: create", "function: '('") + "  match: regex\n", 4, "function",
         "invalid regular expression"),
        (GOOD.replace("  on_enter: mypkg.hooks:enter\n  on_exit: mypkg.hooks:exit\n", ""), 1,
         None, "names no hook"),
        (GOOD.replace("module: shop.orders", "module: [a, b]"), 2, "module", "non-empty string"),
    ],
)
def test_invalid_rules(
    tmp_path: Path, text: str, line: int, field: str | None, fragment: str
) -> None:
    err = _load(tmp_path, text)
    assert err.line == line and err.field == field
    assert err.rule == "orders-create"
    message = str(err)
    assert message.startswith(f"{tmp_path / 'r.yaml'}:{line}: rule 'orders-create'")
    assert fragment in message and "Fix:" in message


def test_duplicate_names(tmp_path: Path) -> None:
    err = _load(tmp_path, GOOD + GOOD)
    assert err.line == 9 and "already used by the rule at" in str(err)


def test_not_a_list_and_bad_yaml(tmp_path: Path) -> None:
    assert "not a list of rules" in str(_load(tmp_path, "name: x\n"))
    assert "not valid YAML" in str(_load(tmp_path, "- name: [\n"))


def test_missing_rule_path(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such file"):
        load_rules([tmp_path / "nope.yaml"])
