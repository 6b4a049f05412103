"""Deployment settings: what the seed's Kubernetes labels say, read from the environment.

| label (seed)            | variable            | default            |
|-------------------------|---------------------|--------------------|
| `msePilotAutoEnable`    | `INSTPY_ENABLED`    | `on`               |
| `mseNamespace`          | `INSTPY_NAMESPACE`  | `default`          |
| `msePilotCreateAppName` | `INSTPY_APP_NAME`   | the build's name   |
| `alicloud.service.tag`  | `INSTPY_SERVICE_TAG`| none (base)        |
| (pod name)              | `INSTPY_INSTANCE`   | `hostname:pid`     |

A pod maps labels to variables with the downward API (docs/deploy/kubernetes.yaml). A missing
label arrives as an empty variable, so empty means unset everywhere.

Exception tree::

    ValueError
     └── SettingsError     a variable holds a value the runtime cannot use (message names it)
"""

from __future__ import annotations

import functools
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ENV_APP_NAME",
    "ENV_ENABLED",
    "ENV_INSTANCE",
    "ENV_NAMESPACE",
    "ENV_SERVICE_TAG",
    "DeploymentSettings",
    "SettingsError",
    "load_settings",
    "settings",
]

ENV_ENABLED = "INSTPY_ENABLED"
ENV_NAMESPACE = "INSTPY_NAMESPACE"
ENV_APP_NAME = "INSTPY_APP_NAME"
ENV_SERVICE_TAG = "INSTPY_SERVICE_TAG"
ENV_INSTANCE = "INSTPY_INSTANCE"

DEFAULT_NAMESPACE = "default"
_TRUE = frozenset({"on", "true", "1", "yes"})
_FALSE = frozenset({"off", "false", "0", "no"})
_NAMESPACE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_APP_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?\Z")
# A Kubernetes label value: the tag comes from one, so it must be able to be one.
_TAG_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?\Z")
_INSTANCE_RE = re.compile(r"[!-~]{1,253}\Z")  # printable ASCII without spaces


class SettingsError(ValueError):
    """A deployment variable holds a value the runtime cannot use."""


@dataclass(frozen=True)
class DeploymentSettings:
    """The instance's identity and switch, as the deployment sets them."""

    enabled: bool
    namespace: str
    app_name: str
    service_tag: str | None  # None: the base (untagged) version; lanes fall back to it
    instance: str

    @property
    def is_base(self) -> bool:
        return self.service_tag is None

    def to_dict(self) -> dict[str, object]:
        """For registration with a center and for logs (nothing secret in here)."""
        return {
            "enabled": self.enabled,
            "namespace": self.namespace,
            "app_name": self.app_name,
            "service_tag": self.service_tag,
            "instance": self.instance,
        }


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _parse_enabled(raw: str) -> bool:
    if not raw:
        return True
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(
        f"{ENV_ENABLED}={raw!r} is not a switch: set it to 'on' or 'off' "
        "(the msePilotAutoEnable label); true/false, yes/no and 1/0 are accepted too"
    )


def _check(name: str, value: str, pattern: re.Pattern[str], how: str) -> str:
    if pattern.match(value) is None:
        raise SettingsError(f"{name}={value!r} is not valid: {how}")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, *, default_app_name: str | None = None
) -> DeploymentSettings:
    """Read and validate the deployment settings from `environ` (default: os.environ).

    `default_app_name` is the build's service name (from the build manifest), used when the
    deployment does not name the app. Raises SettingsError naming the variable and the fix.
    """
    env = os.environ if environ is None else environ
    enabled = _parse_enabled(_get(env, ENV_ENABLED))
    namespace = _check(
        ENV_NAMESPACE,
        _get(env, ENV_NAMESPACE) or DEFAULT_NAMESPACE,
        _NAMESPACE_RE,
        "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit "
        "(the mseNamespace label, like a Kubernetes namespace)",
    )
    app_name = _get(env, ENV_APP_NAME) or (default_app_name or "")
    if not app_name:
        raise SettingsError(
            f"{ENV_APP_NAME} is not set and the build recorded no service name: set "
            f"{ENV_APP_NAME} (the msePilotCreateAppName label) to the service's name"
        )
    _check(
        ENV_APP_NAME,
        app_name,
        _APP_NAME_RE,
        "use 1-128 letters, digits, '.', '_' and '-', starting and ending with a letter or digit "
        "(the msePilotCreateAppName label)",
    )
    tag = _get(env, ENV_SERVICE_TAG) or None
    if tag is not None:
        _check(
            ENV_SERVICE_TAG,
            tag,
            _TAG_RE,
            "use a Kubernetes label value: 1-63 letters, digits, '.', '_' and '-', starting and "
            "ending with a letter or digit (the alicloud.service.tag label); "
            "leave it empty for the base version",
        )
    instance = _get(env, ENV_INSTANCE) or f"{socket.gethostname()}:{os.getpid()}"
    _check(
        ENV_INSTANCE,
        instance,
        _INSTANCE_RE,
        "use 1-253 printable characters without spaces (e.g. the pod name)",
    )
    return DeploymentSettings(
        enabled=enabled,
        namespace=namespace,
        app_name=app_name,
        service_tag=tag,
        instance=instance,
    )


@functools.cache
def settings(default_app_name: str | None = None) -> DeploymentSettings:
    """The process's settings, read once from os.environ.

    Read once on purpose: the identity of an instance must not change under a running engine.
    A pre-fork server that reads them in the master passes the master's value (and so one
    `hostname:pid` instance) to every worker, which is what "a limit is per instance" needs.
    Tests call `settings.cache_clear()`.
    """
    return load_settings(default_app_name=default_app_name)
