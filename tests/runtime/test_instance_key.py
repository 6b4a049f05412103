"""Which processes share an instance's segment: the server a process runs under decides."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from instpy.runtime.shared.instance import instance_key; "
         "import os; print(instance_key(), os.getpid())")


def _key_as(argv0: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """instance_key() in a process whose argv[0] is `argv0` (bash's `exec -a`)."""
    clean = {k: v for k, v in os.environ.items() if k != "INSTPY_INSTANCE"}
    # A bare argv[0] hides the virtual environment from the interpreter: hand it our path.
    clean["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run(
        ["bash", "-c", f'exec -a {argv0} "{sys.executable}" -c "{PROBE}"'],
        capture_output=True, text=True, check=True, env={**clean, **(env or {})}, timeout=60)
    key, pid = done.stdout.split()
    return key, pid


@pytest.mark.parametrize("argv0", ["gunicorn", "python3"])
def test_a_gunicorn_master_is_an_instance_a_plain_process_is_not(argv0: str) -> None:
    key, pid = _key_as(argv0)
    assert key == (f"pid{pid}" if argv0 == "gunicorn" else "None")


def test_a_uvicorn_process_serving_itself_keeps_its_counters() -> None:
    # Without --workers uvicorn serves the app in this very process: nothing to share.
    assert _key_as("uvicorn")[0] == "None"


def test_the_environment_names_the_instance_or_turns_sharing_off() -> None:
    assert _key_as("gunicorn", {"INSTPY_INSTANCE": "shop/a b"})[0] == "shop_a_b"
    assert _key_as("gunicorn", {"INSTPY_INSTANCE": "process"})[0] == "None"
