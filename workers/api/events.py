"""Validating a POSTed event exactly as the workers will: the same decoder, contract and
feature spec, so what the API accepts the workers decide (and what they would dead-letter is
refused with the same reason)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from decisioning.batch_decode import BatchDecoder
from decisioning.contracts import EventError
from decisioning.validation import parse_event
from models.spec import FeatureSpec, load_spec

__all__ = ["Accepted", "ChampionSpec", "EventValidator", "describe", "spec_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event: its id and the Kafka key it is published with (its entity id)."""

    event_id: str
    entity_id: str


class EventValidator:
    """Raw bytes -> :class:`Accepted`, or the :class:`EventError` a worker would raise.

    With a feature spec it is the workers' own :class:`BatchDecoder` (contract + features);
    without one (``feature_spec: none``) the contract only.
    """

    def __init__(self, max_bytes: int, spec: FeatureSpec | None) -> None:
        self.max_bytes = max_bytes
        self.spec: FeatureSpec | None = None
        self._decoder: BatchDecoder | None = None
        self.use(spec)

    def use(self, spec: FeatureSpec | None) -> None:
        """Check features against ``spec`` from now on (None: the contract only)."""
        self._decoder = (
            None
            if spec is None
            else BatchDecoder({c.name: c.type for c in spec.columns}, spec.name, self.max_bytes)
        )
        self.spec = spec

    def check(self, raw: bytes) -> Accepted:
        """Validate ``raw``; raises the :class:`EventError` (reason, stage, message)."""
        decoder = self._decoder
        if decoder is None:
            event = parse_event(raw, self.max_bytes)
            return Accepted(event.event_id, event.entity_id)
        decoded = decoder.decode([raw])
        if decoded.errors:
            raise decoded.errors[0][1]
        return Accepted(decoded.columns.event_id[0], decoded.columns.entity_id[0])


class ChampionSpec:
    """The feature spec of the registry's champion of ``model_name``; :meth:`moved` tells when
    the alias points elsewhere (a promotion may change the spec)."""

    def __init__(self, registry_url: str, model_name: str) -> None:
        from models.registry import ModelRegistry

        self.registry = ModelRegistry(registry_url)
        self.model_name = model_name
        self.version: int | None = None

    def load(self) -> FeatureSpec:
        """Read (and verify) the champion's spec; UnknownModelError when there is none."""
        from models.registry import SPEC_FILE
        from models.spec import spec_from_yaml

        version = self.registry.resolve(self.model_name, "champion")
        blobs = self.registry.verify(self.model_name, version)
        spec = spec_from_yaml(blobs[SPEC_FILE].decode("utf-8"), f"{self.model_name} v{version}")
        self.version = version
        return spec

    def moved(self) -> bool:
        """True when the champion alias points at another version than the loaded one."""
        return self.registry.alias_version(self.model_name) != self.version


def spec_for(
    feature_spec: str, registry_url: str, model_name: str
) -> tuple[FeatureSpec | None, ChampionSpec | None]:
    """The spec named by the ``api.feature_spec`` setting, and its source when it can move.

    ``champion``: the registry champion's (UnknownModelError without one); ``none``: no
    feature check; anything else: a packaged spec name or a YAML path.
    """
    if feature_spec == "none":
        log.warning("api.feature_spec is none: events are checked against the contract only")
        return None, None
    if feature_spec == "champion":
        source = ChampionSpec(registry_url, model_name)
        return source.load(), source
    return load_spec(feature_spec), None


def describe(error: EventError) -> dict[str, object]:
    """The 422 body's ``detail`` of a refused event: the contract error's reason and message."""
    detail: dict[str, object] = {
        "reason": error.reason,
        "stage": error.stage,
        "message": error.message,
        "source": "api",
    }
    errors = getattr(error, "errors", None)
    if errors:
        detail["errors"] = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
    return detail
