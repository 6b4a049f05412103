"""The deployment examples parse and agree with the runtime's variable names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from instpy.runtime import settings
from instpy.runtime.license import ENV_KEY

ROOT = Path(__file__).resolve().parents[2]
LABELS = {
    "msePilotAutoEnable": settings.ENV_ENABLED,
    "mseNamespace": settings.ENV_NAMESPACE,
    "msePilotCreateAppName": settings.ENV_APP_NAME,
    "alicloud.service.tag": settings.ENV_SERVICE_TAG,
}


def test_kubernetes_maps_every_label_to_its_variable() -> None:
    docs = list(yaml.safe_load_all((ROOT / "docs/deploy/kubernetes.yaml").read_text()))
    deployments: list[dict[str, Any]] = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 2
    tags = set()
    for dep in deployments:
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        env = {e["name"]: e["valueFrom"] for e in pod["spec"]["containers"][0]["env"]}
        for label, variable in LABELS.items():
            assert env[variable] == {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}
        assert env[settings.ENV_INSTANCE] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert "secretKeyRef" in env[ENV_KEY]
        tags.add(pod["metadata"]["labels"].get("alicloud.service.tag"))
    assert tags == {None, "gray"}


def test_workflow_and_hooks_parse() -> None:
    workflow = yaml.safe_load((ROOT / "docs/deploy/github-actions.yml").read_text())
    env = workflow["jobs"]["governed"]["env"]
    assert env[ENV_KEY] == "${{ secrets.INSTPY_LICENSE_KEY }}"
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [(h["id"], h["entry"]) for h in hooks] == [("instpy-check", "instpy check")]


def test_dockerfile_keeps_the_key_in_a_build_secret() -> None:
    text = (ROOT / "docs/deploy/Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "--mount=type=secret,id=instpy_license" in text
    assert not re.search(r"^(ARG|ENV)\s+INSTPY_LICENSE_KEY", text, re.M)
