"""Fidelity: Flask's and Starlette's own test suites give the same result per test against the
governed build as against the original package.

Each suite (from the package's PyPI sdist, at the version installed here) runs twice in a
throwaway venv: against the original package, then against the tree `instpy build --govern`
emits for a service that needs only that package — with governance loaded (rules for resources
the suites never request, a non-blocking rule on one they do, statistics for everything), so the
hooks run on every request. See upstream_support.py for how the environment is assembled.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from upstream_support import (
    FIDELITY_RULES,
    REPO,
    Prepared,
    Suite,
    SuiteRun,
    differences,
    mint_key,
    prepare,
    run_both,
)

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(sys.version_info < (3, 11),
                       reason="the upstream suites' runner needs tomllib and python -P (3.11+)"),
]

SUITES = {
    "flask": Suite("flask", "flask.yaml", group="tests"),
    "starlette": Suite(
        "starlette", "starlette.yaml", group="dev",
        tooling=frozenset({"coverage", "mypy", "pytest-codspeed", "ruff", "twine",
                           "types-pyyaml"}),
    ),
}
# Sanity floor: a suite that collects far fewer passing tests than this did not really run.
MIN_PASSED = {"flask": 300, "starlette": 500}


@dataclass
class Runs:
    prep: Prepared
    original: SuiteRun
    governed: SuiteRun


@pytest.fixture(scope="module")
def key() -> str:
    return mint_key("fidelity")


@pytest.fixture(scope="module", params=sorted(SUITES))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         key: str) -> Iterator[Runs]:
    suite = SUITES[request.param]
    if not (REPO / "rules" / suite.rules).is_file():
        pytest.skip(f"rules/{suite.rules} is not in this checkout yet: {suite.distribution} has "
                    "no shipped hook to check the fidelity of")
    prep = prepare(suite, tmp_path_factory.mktemp(f"fidelity-{suite.distribution}"), key)
    original, governed = run_both(prep)
    print(f"\n{suite.distribution} {suite.version}: prepared in "
          + ", ".join(f"{k} {v:.1f}s" for k, v in prep.timings.items()))
    for run in (original, governed):
        print(f"{suite.distribution} {run.label:>8}: {run.counts()} in {run.seconds:.1f}s")
    yield Runs(prep, original, governed)


def test_the_governed_tree_has_the_package_rewritten(runs: Runs) -> None:
    targets = runs.prep.manifest["targets"]
    assert isinstance(targets, list) and targets, "the build governed nothing"
    package = runs.prep.suite.distribution
    assert all(str(t["fingerprint"]).startswith(package + ".") for t in targets), targets
    assert runs.original.package_file is not None
    assert runs.governed.package_file is not None
    assert Path(runs.original.package_file).is_relative_to(runs.prep.deps)
    assert Path(runs.governed.package_file).is_relative_to(runs.prep.governed)


def test_every_test_has_the_same_outcome(runs: Runs) -> None:
    name = runs.prep.suite.distribution
    assert runs.original.counts().get("passed", 0) >= MIN_PASSED[name], \
        runs.original.output[-6000:]
    diff = differences(runs.original, runs.governed)
    assert not diff, (
        f"{len(diff)} of {len(runs.original.outcomes)} tests differ:\n" + "\n".join(diff[:50])
        + f"\n--- governed run output (tail) ---\n{runs.governed.output[-6000:]}"
    )
    assert runs.original.counts() == runs.governed.counts()


def test_governance_ran_on_the_suites_requests_and_blocked_nothing(runs: Runs) -> None:
    assert runs.original.governance is None  # the original run had no runtime at all
    gov = runs.governed.governance
    assert gov is not None
    assert gov["governing"] is True
    assert gov["targets"] and gov["inactive_targets"] == [], gov
    errors, rules = gov["errors"], gov.get("rules", [])
    assert isinstance(errors, list) and isinstance(rules, list)
    assert gov["hook_failures"] == {}, (
        f"hooks failed open: {gov['hook_failures']}\n" + "\n".join(map(str, errors)))
    assert gov["engine"] is True, "no hook ever reached the engine"
    assert set(FIDELITY_RULES) <= set(rules), rules
    assert gov["blocked"] == 0
    passed = gov["passed"]
    assert isinstance(passed, int) and passed >= 100, gov
    print(f"{runs.prep.suite.distribution}: governance passed {passed} requests over "
          f"{gov['resources']} resources, blocked none")
