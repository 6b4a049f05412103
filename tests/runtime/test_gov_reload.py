"""Hot reload of governance.yaml: applied within a second; a bad edit keeps the last good."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from instpy.runtime.engine import Engine
from instpy.runtime.entry import Blocked, Entry

GOOD = "rules:\n  - resource: r\n    flow: {qps: 0}\n"


def wait_for(predicate: object, timeout: float = 1.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError("not applied within the time limit")


def test_change_applies_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text(GOOD)
    eng = Engine()
    try:
        eng.watch(str(path))
        assert isinstance(eng.entry("r"), Blocked)
        path.write_text("rules:\n  - resource: r\n    flow: {qps: 1000}\n")
        wait_for(lambda: isinstance(eng.entry("r"), Entry), timeout=1.0)
    finally:
        eng.close()


def test_invalid_edit_keeps_last_good_rules(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "governance.yaml"
    path.write_text(GOOD)
    eng = Engine()
    try:
        eng.watch(str(path))
        before = eng.config
        with caplog.at_level(logging.ERROR, logger="instpy.governance"):
            path.write_text("rules:\n  - resource: r\n    flow: {qps: -5}\n")
            wait_for(lambda: any("config_rejected" in r.message for r in caplog.records))
        assert eng.config is before
        assert isinstance(eng.entry("r"), Blocked)
        record = next(json.loads(r.message) for r in caplog.records
                      if "config_rejected" in r.message)
        assert record["line"] == 3 and record["field"] == "rules[0].flow.qps"
        assert record["file"] == str(path) and record["fix"]
        assert record["message"].startswith(f"{path}:3: rules[0].flow.qps:")
        # a fixed file is picked up again
        path.write_text("rules:\n  - resource: r\n    flow: {qps: 500}\n")
        wait_for(lambda: isinstance(eng.entry("r"), Entry))
    finally:
        eng.close()


def test_missing_file_starts_with_no_rules_and_picks_it_up(tmp_path: Path) -> None:
    path = tmp_path / "governance.yaml"
    eng = Engine()
    try:
        eng.watch(str(path))
        assert eng.config.rules == ()
        path.write_text(GOOD)
        wait_for(lambda: isinstance(eng.entry("r"), Blocked))
        path.unlink()
        time.sleep(0.3)
        assert isinstance(eng.entry("r"), Blocked)  # deleting the file keeps the rules
    finally:
        eng.close()
