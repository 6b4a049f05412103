"""Whether this process governs at all, decided once, before the first injected target exists.

* `INSTPY_ENABLED=off` (the `msePilotAutoEnable` label): every injected target stays inactive, so
  the governed artifact behaves exactly as the original at the cost of one flag check per call.
* The license: a governed build records its key's binding in `instpy/runtime/binding.json`. When
  the deployment supplies a key (INSTPY_LICENSE_KEY or INSTPY_LICENSE_FILE) it must be the
  build's key, and an explicit INSTPY_NAMESPACE must be the build's namespace; otherwise the key is
  refused and governance stays off. Without a center nothing needs the key, so none is required.

Any problem here turns governance off — the service itself always runs — and is logged once.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from instpy.runtime import logs
from instpy.runtime.license import LicenseBinding, LicenseError, verify_runtime_key
from instpy.runtime.settings import ENV_NAMESPACE, SettingsError, load_settings

log = logging.getLogger("instpy.runtime")

BINDING_PATH = Path(__file__).with_name("binding.json")


def build_binding() -> dict[str, object] | None:
    """What the governed build recorded (None for a runtime that was not emitted by a build)."""
    try:
        data = json.loads(BINDING_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def decide(environ: dict[str, str] | None = None) -> tuple[bool, str]:
    """(governing, reason): the switch and the license check, for `environ` (default os.environ)."""
    env = dict(os.environ) if environ is None else environ
    try:
        binding = build_binding()
        app_name = str(binding.get("app_name", "")) if binding else None
        deployment = load_settings(env, default_app_name=app_name or "service")
        if not deployment.enabled:
            return False, "INSTPY_ENABLED is off: governance is disabled for this instance"
        if binding is not None:
            namespace = deployment.namespace if env.get(ENV_NAMESPACE, "").strip() else None
            verify_runtime_key(LicenseBinding.from_dict(binding), env, required=False,
                               namespace=namespace)
    except (LicenseError, SettingsError, OSError, ValueError) as exc:
        return False, f"governance is off: {exc}"
    return True, "governing"


def governing() -> bool:
    """`decide()` for this process, logged once when governance is off (an error unless the
    deployment switched it off on purpose)."""
    logs.configure()
    on, reason = decide()
    if not on:
        deliberate = reason.startswith("INSTPY_ENABLED is off")
        log.log(logging.INFO if deliberate else logging.ERROR, "instpy: %s", reason)
    return on
