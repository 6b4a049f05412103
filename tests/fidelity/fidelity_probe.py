"""A pytest plugin loaded into an upstream suite's own run (`-p fidelity_probe`).

It records every test's outcome by node id and, when the run is governed, what governance saw
(which targets are active, hook failures, requests passed and blocked, the rules in force, where
the package under test was imported from), and writes it all as JSON to $FIDELITY_REPORT when the
session ends. It never starts the engine itself: if no hook ran, the report says so.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

_outcomes: dict[str, str] = {}
_runtime_errors: list[str] = []


class _Keep(logging.Handler):
    """Keeps the runtime's first error lines (a failing hook, with its traceback): the suite's
    own log capture would show them only under a failing test."""

    def emit(self, record: logging.LogRecord) -> None:
        if len(_runtime_errors) < 5:
            _runtime_errors.append(logging.Formatter().format(record))


# A child of the `instpy` logger, so the runtime's own stderr set-up is left as it is.
logging.getLogger("instpy.runtime").addHandler(_Keep(logging.ERROR))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _outcomes[report.nodeid or "<collection>"] = "error"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    if _outcomes.get(nodeid) == "error":
        return
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if xfail:
            _outcomes[nodeid] = "xfailed" if report.skipped else "xpassed"
        else:
            _outcomes[nodeid] = report.outcome
    elif report.failed:
        _outcomes[nodeid] = "error"  # setup or teardown failed
    elif report.skipped:
        _outcomes[nodeid] = "xfailed" if xfail else "skipped"


def _metric_sum(text: str, name: str) -> int:
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _governance() -> dict[str, object] | None:
    try:
        import instpy.runtime.injected as injected
    except ImportError:
        return None  # the original package: no runtime on the path
    report: dict[str, object] = {
        "governing": injected.GOVERNING,
        "targets": sorted({t.fingerprint for t in injected.all_targets()}),
        "inactive_targets": sorted({t.fingerprint for t in injected.all_targets()
                                    if not t.active}),
        "hook_failures": dict(injected.hook_failures()),
        "errors": _runtime_errors,
        "engine": False,
    }
    governance = sys.modules.get("instpy.runtime.governance")
    slot = getattr(governance, "_engine", None)
    if slot:
        engine = slot[0]
        text = engine.metrics_text()
        report.update(
            engine=True,
            rules=[rule.resource for rule in engine.config.rules],
            passed=_metric_sum(text, "instpy_requests_passed_total"),
            blocked=_metric_sum(text, "instpy_requests_blocked_total"),
            resources=text.count("instpy_requests_passed_total{"),
        )
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("FIDELITY_REPORT")
    if not target:
        return
    package = sys.modules.get(os.environ.get("FIDELITY_PACKAGE", ""))
    data = {
        "exitstatus": int(exitstatus),
        "outcomes": _outcomes,
        "package_file": getattr(package, "__file__", None),
        "governance": _governance(),
    }
    Path(target).write_text(json.dumps(data, indent=1, sort_keys=True))
