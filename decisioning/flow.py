"""Decision flows: one use case = one feature spec + one policy + one registry model + topics.

A deployment runs several flows side by side. A flow file names its parts; every name that
belongs to the flow (registry model, reference data, reports, store rows, metric labels,
Airflow runs) derives from it, never from an ambient default::

    name: mortgage                  # also the registry model name unless `model` says otherwise
    spec: hmda                      # packaged feature spec name, or a YAML path
    policy: mortgage_v1             # shipped policy name, or a YAML path
    topics:                         # overrides of the deployment's topic names
      events: events.mortgage
      decisions: decisions.mortgage

Flows ship as ``decisioning/flows/<name>.yaml``; any other flow is a YAML path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Flow", "FlowError", "TopicRole", "available_flows", "load_flow", "parse_flow"]

_PACKAGE = "decisioning.flows"
TopicRole = Literal["events", "decisions", "shadow", "dlq", "outcomes", "duplicates"]


class FlowError(ValueError):
    """A flow file is missing or invalid; the message names the offending field(s)."""


class Flow(BaseModel):
    """One decision flow (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    spec: str = Field(min_length=1)
    policy: str = Field(min_length=1)
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    topics: dict[TopicRole, str] = Field(default_factory=dict)

    @property
    def model_name(self) -> str:
        """The registry name of this flow's model (the flow's own name unless set)."""
        return self.model or self.name


def parse_flow(data: object, source: str = "<mapping>") -> Flow:
    """Validate a parsed mapping into a :class:`Flow`; raise :class:`FlowError`."""
    if not isinstance(data, dict):
        raise FlowError(f"invalid flow ({source}): top level must be a mapping")
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        lines = [f"invalid flow ({source}):"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<root>"
            lines.append(f"  - {loc}: {err['msg']}")
        raise FlowError("\n".join(lines)) from None


def available_flows() -> list[str]:
    """Names of the flows shipped as package data."""
    root = resources.files(_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_flow(name_or_path: str | Path) -> Flow:
    """Load a flow by shipped name (``credit_data``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        if not path.is_file():
            raise FlowError(f"flow file not found: {path}")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files(_PACKAGE).joinpath(f"{name_or_path}.yaml")
        if not resource.is_file():
            raise FlowError(
                f"unknown flow {str(name_or_path)!r}: not a file and not one of the shipped "
                f"flows {available_flows()}"
            )
        text, source = resource.read_text(encoding="utf-8"), f"decisioning/flows/{name_or_path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowError(f"invalid flow ({source}): not valid YAML: {exc}") from None
    return parse_flow(data, source)
