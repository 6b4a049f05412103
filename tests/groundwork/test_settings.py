"""Deployment settings: defaults, label-shaped values, errors that name the variable."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from instpy.runtime.settings import (
    DeploymentSettings,
    SettingsError,
    load_settings,
    settings,
)


def test_defaults() -> None:
    s = load_settings({}, default_app_name="orders")
    assert s == DeploymentSettings(
        enabled=True,
        namespace="default",
        app_name="orders",
        service_tag=None,
        instance=f"{socket.gethostname()}:{os.getpid()}",
    )
    assert s.is_base


def test_values_as_the_labels_give_them() -> None:
    env = {
        "INSTPY_ENABLED": "on",
        "INSTPY_NAMESPACE": "shop-prod",
        "INSTPY_APP_NAME": "service-a",
        "INSTPY_SERVICE_TAG": "gray",
        "INSTPY_INSTANCE": "service-a-7f9c-xk2p",
    }
    s = load_settings(env, default_app_name="ignored")
    assert (s.namespace, s.app_name, s.service_tag, s.instance) == (
        "shop-prod",
        "service-a",
        "gray",
        "service-a-7f9c-xk2p",
    )
    assert not s.is_base
    assert s.to_dict()["service_tag"] == "gray"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("on", True), ("OFF", False), ("true", True), ("0", False), ("", True), (" yes ", True)],
)
def test_enabled_switch(raw: str, expected: bool) -> None:
    assert load_settings({"INSTPY_ENABLED": raw}, default_app_name="a").enabled is expected


def test_empty_label_means_unset() -> None:
    # The downward API gives an empty string for a label the pod does not carry.
    s = load_settings({"INSTPY_SERVICE_TAG": "", "INSTPY_NAMESPACE": " "}, default_app_name="a")
    assert s.service_tag is None and s.namespace == "default"


@pytest.mark.parametrize(
    ("env", "variable", "hint"),
    [
        ({"INSTPY_ENABLED": "maybe"}, "INSTPY_ENABLED", "'on' or 'off'"),
        ({"INSTPY_NAMESPACE": "Shop_Prod"}, "INSTPY_NAMESPACE", "mseNamespace"),
        ({"INSTPY_APP_NAME": "my app"}, "INSTPY_APP_NAME", "msePilotCreateAppName"),
        ({"INSTPY_SERVICE_TAG": "gray!"}, "INSTPY_SERVICE_TAG", "alicloud.service.tag"),
        ({"INSTPY_INSTANCE": "a b"}, "INSTPY_INSTANCE", "without spaces"),
    ],
)
def test_errors_name_variable_and_fix(env: dict[str, str], variable: str, hint: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env, default_app_name="a")
    assert variable in str(info.value) and hint in str(info.value)


def test_app_name_required_without_build_name() -> None:
    with pytest.raises(SettingsError, match="INSTPY_APP_NAME is not set"):
        load_settings({})


def test_settings_is_frozen_and_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    settings.cache_clear()
    try:
        monkeypatch.setenv("INSTPY_APP_NAME", "first")
        s = settings()
        monkeypatch.setenv("INSTPY_APP_NAME", "second")
        assert settings() is s and s.app_name == "first"
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.app_name = "x"  # type: ignore[misc]
    finally:
        settings.cache_clear()
