"""`rules:` — per-resource rules: one entry per resource, one rule per family."""

from __future__ import annotations

from dataclasses import dataclass

from instpy.runtime import fallback as fb
from instpy.runtime.circuitbreaker import rule as breaker_rule
from instpy.runtime.config import values as v
from instpy.runtime.config.nodes import Node
from instpy.runtime.config.section import Section
from instpy.runtime.flow import rule as flow_rule
from instpy.runtime.hotspot import rule as hot_rule
from instpy.runtime.isolation import rule as isolation_rule

KEYS = ("resource", "flow", "concurrency", "hot_param", "circuit_breaker", "fallback", "degrade",
        "scope")
SCOPES = ("instance", "process")
LIMIT_KEYS = ("flow", "concurrency", "hot_param", "circuit_breaker", "degrade")


@dataclass(frozen=True)
class DegradeRule:
    """Every call of `resource` is answered by `fallback` without running."""

    resource: str
    fallback: fb.Fallback


@dataclass(frozen=True)
class ResourceRules:
    resource: str
    flow: flow_rule.FlowRule | None = None
    isolation: isolation_rule.IsolationRule | None = None
    hot_param: hot_rule.HotParamRule | None = None
    circuit_breaker: breaker_rule.BreakerRule | None = None
    fallback: fb.Fallback | None = None
    degrade: DegradeRule | None = None
    # "instance": counted across all worker processes of the instance (a pre-fork server's
    # shared segment); "process": each worker process counts on its own.
    scope: str = "instance"


def parse(node: Node) -> tuple[ResourceRules, ...]:
    seen: dict[str, int] = {}
    out = []
    for item in v.sequence(node, "rules"):
        rules = _parse_entry(item)
        if rules.resource in seen:
            raise item.error(f"resource {rules.resource!r} already has rules at line "
                             f"{seen[rules.resource]}",
                             "merge both entries into one (one entry per resource)")
        seen[rules.resource] = item.line
        out.append(rules)
    return tuple(out)


def _parse_entry(node: Node) -> ResourceRules:
    fields = v.mapping(node, KEYS, "a rules entry")
    res_node = v.require(fields, "resource", node, "a rules entry")
    resource = v.string(res_node)
    if resource != resource.strip():
        raise res_node.error(f"resource {resource!r} has leading or trailing spaces",
                             "remove them: resource names are matched exactly")
    if not any(k in fields for k in LIMIT_KEYS):
        raise node.error(f"the entry for {resource!r} sets no rule",
                         f"add one of: {', '.join(LIMIT_KEYS)}")
    fallback = fb.parse(fields["fallback"]) if "fallback" in fields else None
    scope = v.choice(fields["scope"], SCOPES) if "scope" in fields else "instance"
    degrade = None
    if "degrade" in fields:
        dnode = fields["degrade"]
        if isinstance(dnode.value, bool):
            if dnode.value:
                if fallback is None:
                    raise dnode.error("`degrade: true` answers with the resource's fallback, "
                                      "but it has none",
                                      "add `fallback:` or write the answer inline "
                                      "(`degrade: {status: 503}`)")
                degrade = DegradeRule(resource, fallback)
        else:
            degrade = DegradeRule(resource, fb.parse(dnode, "degrade"))
    return ResourceRules(
        resource=resource,
        flow=flow_rule.parse(fields["flow"], resource) if "flow" in fields else None,
        isolation=(isolation_rule.parse(fields["concurrency"], resource)
                   if "concurrency" in fields else None),
        hot_param=hot_rule.parse(fields["hot_param"], resource) if "hot_param" in fields else None,
        circuit_breaker=(breaker_rule.parse(fields["circuit_breaker"], resource)
                         if "circuit_breaker" in fields else None),
        fallback=fallback,
        degrade=degrade,
        scope=scope,
    )


SECTION: Section[tuple[ResourceRules, ...]] = Section(
    "rules", parse, (), "per-resource flow, concurrency, hot_param, circuit_breaker, degrade")
