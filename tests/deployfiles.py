"""Read the worker's command line and environment out of the deploy files, as each runtime would.

Used by the unit checks of the manifests and by the integration test that runs those very
command lines against the local stack, so a deploy file cannot drift from what was tested.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DOCKERFILE",
    "K8S",
    "WorkerLaunch",
    "compose_worker",
    "configmap",
    "dockerfile_worker",
    "k8s_docs",
    "statefulset_worker",
]

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
COMPOSE = INFRA / "compose.yaml"
K8S = INFRA / "k8s"


class WorkerLaunch:
    """A worker's argv and the environment its runtime gives it (values as written)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env


def _dockerfile_lines() -> list[str]:
    """Logical lines of the final stage (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    last_from = max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))
    return lines[last_from:]


def dockerfile_worker() -> WorkerLaunch:
    """The image's CMD (exec form) and its ENV."""
    env: dict[str, str] = {}
    cmd: list[str] = []
    for line in _dockerfile_lines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
        elif line.startswith("CMD "):
            cmd = json.loads(line[4:])
    assert cmd, "the Dockerfile has no exec-form CMD"
    return WorkerLaunch(cmd, env)


def compose_worker() -> WorkerLaunch:
    """The compose ``worker`` service's command and environment (after merge keys)."""
    doc = yaml.safe_load(COMPOSE.read_text())
    service = doc["services"]["worker"]
    cmd = service["command"]
    argv = cmd if isinstance(cmd, list) else shlex.split(cmd)
    env = {k: _interpolate(str(v)) for k, v in service["environment"].items()}
    return WorkerLaunch([_interpolate(str(a)) for a in argv], env)


def _interpolate(value: str) -> str:
    """Compose's variable interpolation with every variable unset: ``${X:-d}`` is d, a
    required ``${X:?msg}`` is a placeholder, ``$$`` is ``$``."""

    def one(m: re.Match[str]) -> str:
        op, arg = m[2] or "", m[3] or ""
        return arg if op.endswith("-") else "REPLACE_ME" if op.endswith("?") else ""

    value = re.sub(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}", one, value)
    return value.replace("$$", "$")


def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    """Documents per manifest file (kustomization.yaml excluded)."""
    docs = {}
    for path in sorted(K8S.glob("*.y*ml")):
        if path.name != "kustomization.yaml":
            docs[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _find(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [
        d
        for docs in k8s_docs().values()
        for d in docs
        if d.get("kind") == kind and d["metadata"]["name"] == name
    ]
    return doc


def configmap() -> dict[str, str]:
    """The settings ConfigMap every decisionflow pod reads."""
    return {k: str(v) for k, v in _find("ConfigMap", "decisionflow-settings")["data"].items()}


def statefulset_worker(pod_name: str = "decisionflow-worker-0") -> WorkerLaunch:
    """The StatefulSet container's command + args and env, expanded as the kubelet does.

    ``$(VAR)`` expands to variables defined earlier (ConfigMap via envFrom, then ``env`` in
    order); ``fieldRef: metadata.name`` is the pod name. Secret values are not included.
    """
    worker = _find("StatefulSet", "decisionflow-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = dict(configmap())
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _expand(str(item["value"]), env)
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
    argv = [_expand(str(a), env) for a in [*container["command"], *container.get("args", [])]]
    return WorkerLaunch(argv, env)


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)
