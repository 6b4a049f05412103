"""The governed-service helpers (build, serve, drive) are shared with tests/govern."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "govern"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "groundwork"))
