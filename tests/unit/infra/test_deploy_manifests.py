"""Deployment manifests: compose, Kubernetes, Grafana dashboard and Dockerfile.

No Docker, kubectl or kubeconform here: every file is parsed with PyYAML/json and checked
against compact JSON Schemas for the parts the project relies on (GPU reservation, health
checks, loopback-only ports, no literal secrets, probes, PDB, kustomize completeness), plus
cross-file checks that a schema cannot express (settings names exist, ports agree).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from tests import deployfiles
from tests.deployfiles import (
    WorkerLaunch,
    compose_worker,
    configmap,
    dockerfile_worker,
    statefulset_worker,
)
from workers.commands.stream_cmd import worker
from workers.settings import SinkSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "compose.yaml"
K8S = INFRA / "k8s"
DASHBOARD = INFRA / "grafana" / "decisionflow-worker.json"
DOCKERFILE = INFRA / "docker" / "Dockerfile"

PLACEHOLDER = "REPLACE_ME"
K8S_VERSION = "1.37.0"  # the newest schemas kubernetes-validate ships (pinned in constraints)


def violations(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every schema violation as 'path: message' (empty when the instance conforms)."""
    Draft202012Validator.check_schema(schema)
    found = Draft202012Validator(schema).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found)


def nested(path: list[str], leaf: dict[str, Any]) -> dict[str, Any]:
    """{"required": [a], "properties": {a: {"required": [b], ...leaf}}} for path [a, b, ...]."""
    schema = leaf
    for key in reversed(path):
        schema = {"type": "object", "required": [key], "properties": {key: schema}}
    return schema


# --------------------------------------------------------------------------- shared schemas

SECRET_KEY = r"(?i)(PASSWORD|SECRET|TOKEN)"
# a compose interpolation (${VAR}, ${VAR:?msg}, ${VAR:-default}) or a mounted secret file
SECRET_VALUE = {
    "type": "string",
    "anyOf": [
        {"pattern": r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$"},
        {"pattern": r"^/run/secrets/[\w.-]+$"},
    ],
}
# scheme://user:password@host with a literal password (a ${...} reference is fine)
URL_WITH_LITERAL_PASSWORD = {"type": "string", "pattern": r"://[^/\s:@]+:(?!\$\{)[^@\s]*@"}
# applied to the whole compose document, however deep
NO_LITERAL_SECRETS = {
    "$defs": {
        "tree": {
            "if": {"type": "string"},
            "then": {"not": URL_WITH_LITERAL_PASSWORD},
            "patternProperties": {
                SECRET_KEY: {
                    "anyOf": [{"type": ["object", "array"], "$ref": "#/$defs/tree"}, SECRET_VALUE]
                }
            },
            "additionalProperties": {"$ref": "#/$defs/tree"},
            "items": {"$ref": "#/$defs/tree"},
        }
    },
    "$ref": "#/$defs/tree",
}


# --------------------------------------------------------------------------- compose

LOOPBACK_PORT = {
    "anyOf": [
        {"type": "string", "pattern": r"^127\.0\.0\.1:\d+(-\d+)?:\d+(-\d+)?(/(tcp|udp))?$"},
        {
            "type": "object",
            "required": ["host_ip", "target"],
            "properties": {"host_ip": {"const": "127.0.0.1"}},
        },
    ]
}
HEALTHCHECK = nested(
    ["healthcheck", "test"],
    {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 2}]},
)
GPU_RESERVATION = nested(
    ["deploy", "resources", "reservations", "devices"],
    {
        "type": "array",
        "contains": {
            "type": "object",
            "required": ["driver", "count", "capabilities"],
            "properties": {
                "driver": {"const": "nvidia"},
                "count": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "all"}]},
                "capabilities": {"type": "array", "contains": {"const": "gpu"}},
            },
        },
    },
)
SERVICE = {
    "type": "object",
    "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
    "properties": {
        "image": {"type": "string", "minLength": 1},
        "ports": {"type": "array", "items": LOOPBACK_PORT},
        # mapping form only, so every key is visible to the secret check
        "environment": {"type": "object"},
        "depends_on": {
            "type": "object",
            "additionalProperties": {"type": "object", "required": ["condition"]},
        },
    },
}
KAFKA = {
    "properties": {
        "image": {"type": "string", "pattern": r"^apache/kafka:4\."},
        "environment": {
            "type": "object",
            "required": [
                "KAFKA_PROCESS_ROLES",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            ],
            "properties": {
                "KAFKA_PROCESS_ROLES": {
                    "type": "string",
                    "allOf": [{"pattern": r"\bbroker\b"}, {"pattern": r"\bcontroller\b"}],
                },
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": {"enum": [1, "1"]},
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": {"enum": [1, "1"]},
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": {"enum": [1, "1"]},
            },
        },
    }
}
COMPOSE_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "object",
            "required": ["kafka", "redis", "postgres", "airflow", "sink", "flower", "worker"],
            "additionalProperties": SERVICE,
            "properties": {
                "kafka": {"allOf": [SERVICE, HEALTHCHECK, KAFKA]},
                "redis": {"allOf": [SERVICE, HEALTHCHECK]},
                "postgres": {"allOf": [SERVICE, HEALTHCHECK]},
                "worker": {"allOf": [SERVICE, GPU_RESERVATION, {"required": ["command"]}]},
            },
        },
        "secrets": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "anyOf": [
                    {"required": ["environment"]},
                    {"required": ["file"]},
                    {"required": ["external"]},
                ],
                "not": {"required": ["content"]},  # inline content would be a literal
            },
        },
    },
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the << merge keys
    assert isinstance(doc, dict)
    return doc


def command_line(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_compose_matches_schema(compose: dict[str, Any]) -> None:
    assert violations(COMPOSE_SCHEMA, compose) == []


def test_compose_has_no_literal_secrets(compose: dict[str, Any]) -> None:
    assert violations(NO_LITERAL_SECRETS, compose) == []


def deciding_worker_options(argv: list[str]) -> dict[str, Any]:
    """The options ``decisionflow worker`` parses from a deploy file's command line."""
    assert argv[:2] == ["decisionflow", "worker"], argv
    with worker.make_context("worker", list(argv[2:])) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("launch", [dockerfile_worker, compose_worker, statefulset_worker])
def test_every_deploy_file_runs_a_deciding_worker_on_the_gpu_queue(
    launch: Callable[[], WorkerLaunch],
) -> None:
    options = deciding_worker_options(launch().argv)
    assert options["decide"] is True and options["queues"] == "gpu"
    assert options["celery_args"] == ()


def test_docs_show_the_command_the_deploy_files_run() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert " ".join(dockerfile_worker().argv[:2]) + " --name" in deploy
    assert "decide,gpu" not in deploy  # the queue that no worker ever consumed


@pytest.mark.parametrize("launch", [dockerfile_worker, compose_worker, statefulset_worker])
def test_containers_serve_metrics_beyond_loopback(launch: Callable[[], WorkerLaunch]) -> None:
    env = {**dockerfile_worker().env, **launch().env}
    settings = WorkerSettings(_env_file=None, **_settings_kwargs(env))
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port == 9464


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    fields = WorkerSettings.model_fields
    flat = {k.removeprefix("DECISIONFLOW_").lower(): v for k, v in env.items()}
    return {k: v for k, v in flat.items() if k in fields and "__" not in k}


def test_configmap_model_name_is_a_packaged_spec() -> None:
    from models.spec import load_spec

    name = configmap()["DECISIONFLOW_MODEL_NAME"]
    assert load_spec(name).name == name


def test_compose_app_services_wait_for_healthy_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "sink", "airflow"):
        deps = services[name]["depends_on"]
        for backing in ("kafka", "redis", "postgres"):
            assert deps[backing]["condition"] == "service_healthy", (name, backing)


def test_compose_airflow_is_standalone_with_dags_and_postgres_metadata(
    compose: dict[str, Any],
) -> None:
    airflow = compose["services"]["airflow"]
    assert "standalone" in command_line(airflow)
    assert any(str(v).split(":")[1:2] == ["/opt/airflow/dags"] for v in airflow["volumes"])
    conn = airflow["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn.startswith("postgresql") and "@postgres:" in conn


def test_compose_worker_metrics_port_is_published_and_health_checked(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    port = str(worker["environment"]["DECISIONFLOW_METRICS_PORT"])
    assert any(str(p).endswith(f":{port}") for p in worker["ports"])
    assert f":{port}/metrics" in " ".join(worker["healthcheck"]["test"])


# --------------------------------------------------------------------------- settings names


def settings_field_exists(env_name: str) -> bool:
    """Whether DECISIONFLOW_A__B names a field of the worker or sink settings."""
    if not env_name.startswith("DECISIONFLOW_"):
        return False
    parts = env_name.removeprefix("DECISIONFLOW_").lower().split("__")
    for model in (WorkerSettings, SinkSettings):
        current: type[BaseModel] | None = model
        for part in parts:
            field = current.model_fields.get(part) if current else None
            if field is None:
                break
            ann = field.annotation
            current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        else:
            return True
    return False


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS", True),
        ("DECISIONFLOW_MAX_BATCH_SIZE", True),
        ("DECISIONFLOW_DATABASE_URL", True),
        ("DECISIONFLOW_MAX_BATCH", False),
        ("DECISIONFLOW_KAFKA__NOPE", False),
        ("KAFKA_BOOTSTRAP", False),
    ],
)
def test_settings_name_check(name: str, known: bool) -> None:
    assert settings_field_exists(name) is known


def test_compose_decisionflow_variables_are_real_settings(compose: dict[str, Any]) -> None:
    names = {
        key
        for service in compose["services"].values()
        for key in service.get("environment", {})
        if key.startswith("DECISIONFLOW_")
    }
    assert names, "no DECISIONFLOW_ settings passed at all"
    assert sorted(n for n in names if not settings_field_exists(n)) == []


# --------------------------------------------------------------------------- kubernetes

K8S_DOC = nested(["metadata", "name"], {"type": "string", "minLength": 1}) | {
    "required": ["apiVersion", "kind", "metadata"],
}
PROBE = nested(["httpGet", "port"], {"enum": ["metrics", 9464]})
GPU_QUANTITY = {
    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[1-9]"}]
}
WORKER_CONTAINER = {
    "type": "object",
    "required": ["image", "readinessProbe", "livenessProbe", "resources", "ports"],
    "properties": {
        "readinessProbe": PROBE,
        "livenessProbe": PROBE,
        "resources": {
            "type": "object",
            "required": ["limits", "requests"],
            "properties": {
                "limits": {
                    "required": ["nvidia.com/gpu"],
                    "properties": {"nvidia.com/gpu": GPU_QUANTITY},
                },
                "requests": {
                    "required": ["nvidia.com/gpu"],
                    "properties": {"nvidia.com/gpu": GPU_QUANTITY},
                },
            },
        },
        "ports": {
            "type": "array",
            "contains": {"required": ["name"], "properties": {"name": {"const": "metrics"}}},
        },
    },
}
WORKER_POD = {
    "type": "object",
    "required": ["containers", "nodeSelector", "tolerations", "terminationGracePeriodSeconds"],
    "properties": {
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 60},
        "nodeSelector": {"type": "object", "minProperties": 1},
        "tolerations": {
            "type": "array",
            "contains": {"required": ["key"], "properties": {"key": {"const": "nvidia.com/gpu"}}},
        },
        "containers": {"type": "array", "minItems": 1, "items": WORKER_CONTAINER},
    },
}
WORKER_STATEFULSET = {
    "type": "object",
    "required": ["kind", "spec"],
    "properties": {
        "kind": {"const": "StatefulSet"},
        "spec": {
            "type": "object",
            "required": ["serviceName", "replicas", "template"],
            "properties": {"template": nested(["spec"], WORKER_POD)},
        },
    },
}
SECRET_TEMPLATE = {
    "not": {"required": ["data"]},  # base64 values cannot be checked for placeholders
    "properties": {
        "stringData": {"type": "object", "additionalProperties": {"const": PLACEHOLDER}}
    },
}


@pytest.fixture(scope="module")
def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    """Documents per manifest file (kustomization.yaml excluded)."""
    docs = deployfiles.k8s_docs()
    assert docs, "no Kubernetes manifests"
    return docs


def find(docs: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    hits = [
        d
        for file_docs in docs.values()
        for d in file_docs
        if d.get("kind") == kind and d["metadata"]["name"] == name
    ]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def test_every_k8s_doc_has_api_version_kind_and_name(k8s_docs: dict[str, list[Any]]) -> None:
    for name, docs in k8s_docs.items():
        for doc in docs:
            assert violations(K8S_DOC, doc) == [], name


def test_kustomization_lists_every_manifest(k8s_docs: dict[str, list[Any]]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "duplicate resources"
    assert sorted(resources) == sorted(k8s_docs)


def test_worker_statefulset_requests_a_gpu_with_probes(k8s_docs: dict[str, list[Any]]) -> None:
    worker = find(k8s_docs, "StatefulSet", "decisionflow-worker")
    assert violations(WORKER_STATEFULSET, worker) == []


# kustomization.yaml is a kustomize file, not an API object (checked by the kustomization test)
API_OBJECT_FILES = [p for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]


@pytest.mark.parametrize("path", API_OBJECT_FILES, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    """Strict validation against the Kubernetes JSON schemas shipped by kubernetes-validate
    (offline; unknown fields, wrong types and missing required fields all fail)."""
    import kubernetes_validate

    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_schema_check_catches_a_broken_manifest() -> None:
    import kubernetes_validate

    doc = yaml.safe_load((K8S / "worker-statefulset.yaml").read_text())
    doc["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_worker_transactional_id_is_stable_per_pod(k8s_docs: dict[str, list[Any]]) -> None:
    worker = find(k8s_docs, "StatefulSet", "decisionflow-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "$(POD_NAME)" in env["DECISIONFLOW_TRANSACTIONAL_ID_PREFIX"]["value"]
    names = list(env)  # $(VAR) only expands variables defined earlier in the list
    assert names.index("POD_NAME") < names.index("DECISIONFLOW_TRANSACTIONAL_ID_PREFIX")


def test_metrics_port_agrees_across_configmap_container_and_service(
    k8s_docs: dict[str, list[Any]],
) -> None:
    settings = find(k8s_docs, "ConfigMap", "decisionflow-settings")["data"]
    port = int(settings["DECISIONFLOW_METRICS_PORT"])
    worker = find(k8s_docs, "StatefulSet", "decisionflow-worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    service = find(k8s_docs, "Service", "decisionflow-worker")
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] in ("metrics", port)
    assert service["spec"]["clusterIP"] == "None"  # headless: one scrape target per pod
    assert worker["spec"]["serviceName"] == service["metadata"]["name"]
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_pdb_covers_the_workers(k8s_docs: dict[str, list[Any]]) -> None:
    pdb = find(k8s_docs, "PodDisruptionBudget", "decisionflow-worker")
    worker = find(k8s_docs, "StatefulSet", "decisionflow-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]


def test_sink_deployment_runs_the_sink(k8s_docs: dict[str, list[Any]]) -> None:
    sink = find(k8s_docs, "Deployment", "decisionflow-sink")
    (container,) = sink["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == "decisionflow" and container["command"][-1] == "sink"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})


def test_secret_is_a_template_without_values(k8s_docs: dict[str, list[Any]]) -> None:
    secrets = [d for docs in k8s_docs.values() for d in docs if d["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert violations(SECRET_TEMPLATE, secret) == []


def test_pods_reference_existing_config_and_secret(k8s_docs: dict[str, list[Any]]) -> None:
    for kind, name in (("StatefulSet", "decisionflow-worker"), ("Deployment", "decisionflow-sink")):
        workload = find(k8s_docs, kind, name)
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    find(k8s_docs, "ConfigMap", source["configMapRef"]["name"])
                else:
                    find(k8s_docs, "Secret", source["secretRef"]["name"])


def test_k8s_decisionflow_variables_are_real_settings(k8s_docs: dict[str, list[Any]]) -> None:
    names = set(find(k8s_docs, "ConfigMap", "decisionflow-settings")["data"])
    names |= set(find(k8s_docs, "Secret", "decisionflow-secrets")["stringData"])
    worker = find(k8s_docs, "StatefulSet", "decisionflow-worker")
    names |= {e["name"] for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    names = {n for n in names if n.startswith("DECISIONFLOW_")}
    assert sorted(n for n in names if not settings_field_exists(n)) == []


# --------------------------------------------------------------------------- grafana

DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "panels"],
    "properties": {
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["title", "type", "targets"],
                "properties": {
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": nested(["expr"], {"type": "string", "minLength": 1}),
                    }
                },
            },
        }
    },
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "offset", "bool", "inf", "nan"}
REQUIRED_METRICS = {
    "decisionflow_events_consumed_total",
    "decisionflow_batch_size_bucket",
    "decisionflow_score_seconds_bucket",
    "decisionflow_e2e_latency_seconds_bucket",
    "decisionflow_decisions_total",
    "decisionflow_dlq_total",
    "decisionflow_consumer_lag_records",
    "decisionflow_model_info",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, labels, keywords, variables removed)."""
    e = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\w+", "", e)  # dashboard variables
    found = re.findall(r"(?<![\w.$])([A-Za-z_:][\w:]*)\b(?!\s*\()", e)
    return {n for n in found if n.lower() not in PROMQL_WORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        ("sum(rate(x_sum[5m])) / sum(rate(x_count[5m]))", {"x_sum", "x_count"}),
        ("max by (partition) (lag) and on (instance) up", {"lag", "up"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def test_dashboard_matches_schema(dashboard: dict[str, Any]) -> None:
    assert violations(DASHBOARD_SCHEMA, dashboard) == []


def test_dashboard_queries_only_decisionflow_metrics(dashboard: dict[str, Any]) -> None:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert {n for n in names if not n.startswith("decisionflow_")} == set(), panel["title"]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("definition", "")
        for metric in re.findall(r"label_values\(\s*([\w:]+)", query):
            assert metric.startswith("decisionflow_"), var["name"]


def test_dashboard_covers_the_worker_metrics(dashboard: dict[str, Any]) -> None:
    used = {n for p in dashboard["panels"] for t in p["targets"] for n in metric_names(t["expr"])}
    assert sorted(REQUIRED_METRICS - used) == []
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for q in ("0.5", "0.99"):  # e2e latency p50 and p99
        assert re.search(rf"histogram_quantile\({q},[^;]*decisionflow_e2e_latency", exprs), q


def test_dashboard_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- dockerfile


def test_dockerfile_installs_the_lock_on_python_311_slim_as_non_root() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if not ln.startswith("#")]
    text = "\n".join(lines)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"pip install -c constraints\.txt \"\.\[airflow\]\"", text)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_every_worker_panel_filters_by_flow(dashboard: dict[str, Any]) -> None:
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert "flow" in names
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all('flow=~"$flow"' in e for e in exprs)
