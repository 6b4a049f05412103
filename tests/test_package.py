"""The package installs, runs as a console script and as `python -m instpy`."""

from __future__ import annotations

import subprocess
import sys

from instpy import __version__


def test_python_m_instpy_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "instpy", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout
