"""Declarative, versioned decision policies (YAML) and their validation.

A policy turns a risk score (probability of the positive, "bad" class: HIGH = risky) into a
decision. Hard rules are checked first, in declared order; the first rule that matches decides.
Otherwise the first matching segment's score bands apply (else the default bands). When no
score is available the fallback decision applies. See ``docs/policies.md`` for the format.

Band semantics: every band is half-open ``[from, to)`` except the last, which is closed
``[from, 1.0]``. Bands must start at 0.0, end at 1.0, be sorted and leave no gap or overlap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ENTITY_ID",
    "OPERATORS",
    "Band",
    "Condition",
    "Fallback",
    "Operator",
    "Policy",
    "PolicyError",
    "ReasonCode",
    "ReasonMethod",
    "Rule",
    "Segment",
    "available_policies",
    "check_features",
    "dump_policy",
    "load_policy",
    "parse_policy",
    "save_policy",
]

#: Reserved condition field that refers to the event's entity_id instead of a feature.
ENTITY_ID = "entity_id"

Operator = Literal["<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_missing"]
OPERATORS: tuple[str, ...] = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_missing")
_ALIASES = {
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
    "not in": "not_in",
    "notin": "not_in",
    "missing": "is_missing",
}

Scalar = str | int | float | bool
ReasonMethod = Literal["integrated_gradients", "gradient_x_input", "tree_path", "none"]
"""How feature reasons are computed; a model family without the method uses its own default."""
Name = Annotated[str, Field(min_length=1, max_length=128)]


class PolicyError(ValueError):
    """A policy file or object that is invalid; ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReasonCode(_Frozen):
    """A reason code and its human-readable text."""

    code: Name
    text: Annotated[str, Field(min_length=1)]


class Condition(_Frozen):
    """``feature op value``; comparisons with a missing value are false (use ``is_missing``)."""

    feature: Name
    op: Operator
    value: Scalar | list[Scalar] | None = None

    @field_validator("op", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _ALIASES.get(value.strip().lower(), value.strip())
        return value

    @model_validator(mode="after")
    def _typed_value(self) -> Condition:
        op, value, where = self.op, self.value, f"condition on {self.feature!r} ({self.op})"
        if op in ("<", "<=", ">", ">="):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: value must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{where}: value must be finite")
        elif op in ("==", "!="):
            if value is None or isinstance(value, list):
                raise ValueError(f"{where}: value must be one string, number or boolean")
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"{where}: value must be a non-empty list")
        elif op == "is_missing" and value is not None and not isinstance(value, bool):
            raise ValueError(f"{where}: value must be omitted, true or false")
        return self


def _as_conditions(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class Rule(_Frozen):
    """A hard rule: when all its conditions hold, it decides (before the model)."""

    name: Name
    when: Annotated[list[Condition], Field(min_length=1)]
    decision: Name
    reason: ReasonCode | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _when_list(cls, value: Any) -> Any:
        return _as_conditions(value)

    def reason_code(self) -> ReasonCode:
        """The rule's reason code (default: ``RULE_<NAME>``)."""
        return self.reason or ReasonCode(
            code=f"RULE_{self.name.upper()}", text=f"Policy rule {self.name} applied"
        )


class Band(_Frozen):
    """Scores in ``[from, to)`` (the last band: ``[from, 1.0]``) get ``decision``."""

    decision: Name
    lower: Annotated[float, Field(alias="from", allow_inf_nan=False)]
    upper: Annotated[float, Field(alias="to", allow_inf_nan=False)]


class Segment(_Frozen):
    """Entities matching all ``when`` conditions get their own bands (first segment wins)."""

    name: Name
    when: Annotated[list[Condition], Field(min_length=1)]
    bands: list[Band]

    @field_validator("when", mode="before")
    @classmethod
    def _when_list(cls, value: Any) -> Any:
        return _as_conditions(value)


class Fallback(_Frozen):
    """Decision when no score is available (model failed, timed out, invalid score)."""

    decision: Name
    reason: ReasonCode = ReasonCode(
        code="MODEL_UNAVAILABLE", text="Risk model unavailable; decided by fallback policy"
    )


class ScoreSpec(_Frozen):
    """What the score means (documentation for readers; HIGH = risky is assumed)."""

    meaning: str = "probability of the positive class (higher = riskier)"
    positive_class: str = "bad"


def _band_problems(bands: list[Band], where: str) -> list[str]:
    problems: list[str] = []
    if not bands:
        return [f"{where}: at least one band is required"]
    for band in bands:
        if not (0.0 <= band.lower <= 1.0 and 0.0 <= band.upper <= 1.0):
            problems.append(
                f"{where}: band {band.decision} [{band.lower}, {band.upper}) is outside [0, 1]"
            )
        if band.lower >= band.upper:
            problems.append(
                f"{where}: band {band.decision} is empty or reversed "
                f"(from {band.lower} >= to {band.upper})"
            )
    if bands[0].lower != 0.0:
        problems.append(f"{where}: bands must start at 0.0 (gap [0.0, {bands[0].lower}))")
    if bands[-1].upper != 1.0:
        problems.append(f"{where}: bands must end at 1.0 (gap from {bands[-1].upper})")
    for prev, nxt in itertools.pairwise(bands):
        if nxt.lower > prev.upper:
            problems.append(
                f"{where}: gap between {prev.decision} and {nxt.decision}: "
                f"[{prev.upper}, {nxt.lower}) is not covered"
            )
        elif nxt.lower < prev.upper:
            problems.append(
                f"{where}: bands {prev.decision} and {nxt.decision} overlap on "
                f"[{nxt.lower}, {prev.upper})"
            )
    return problems


class Policy(_Frozen):
    """A validated decision policy. Build with :func:`load_policy` or ``Policy.model_validate``."""

    name: Name
    version: Name
    description: str = ""
    score: ScoreSpec = ScoreSpec()
    decisions: Annotated[list[Name], Field(min_length=1)]
    bands: list[Band]
    rules: list[Rule] = []
    segments: list[Segment] = []
    fallback: Fallback
    reason_codes: dict[str, ReasonCode] = {}
    top_reasons: Annotated[int, Field(ge=0, le=20)] = 3
    reasons: ReasonMethod = "gradient_x_input"
    """The explanation method behind feature reasons (``none``: band reasons only, no model
    explanation is computed). Default ``gradient_x_input``: one forward and backward per row,
    ~8x cheaper than ``integrated_gradients`` (16 steps) for the MLP on one CPU thread (1.5 vs
    13 us per event), and the same top-3 reason set for ~83 % of credit holdout applicants
    (top-1: ~91 %). Families without gradients fall back to their own default, which is cheap
    too (hgb: ``tree_path``, logreg: exact linear terms)."""
    explain_only: list[Name] | None = None
    """Decisions whose model-decided rows get feature reasons (e.g. ``[review, decline]``);
    other rows get the band reason without any explanation computed. None: every decision."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems: list[str] = []
        known = set(self.decisions)
        if len(known) != len(self.decisions):
            problems.append("decisions: names must be unique")

        def check_decision(name: str, where: str) -> None:
            if name not in known:
                problems.append(
                    f"{where}: unknown decision {name!r} (declared: {', '.join(self.decisions)})"
                )

        problems += _band_problems(self.bands, "bands")
        for band in self.bands:
            check_decision(band.decision, "bands")
        for rule in self.rules:
            check_decision(rule.decision, f"rule {rule.name}")
        for segment in self.segments:
            problems += _band_problems(segment.bands, f"segment {segment.name}")
            for band in segment.bands:
                check_decision(band.decision, f"segment {segment.name}")
        check_decision(self.fallback.decision, "fallback")
        for decision in self.explain_only or []:
            check_decision(decision, "explain_only")
        for kind, names in (
            ("rule", [r.name for r in self.rules]),
            ("segment", [s.name for s in self.segments]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"{kind} names must be unique: {', '.join(dupes)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def referenced_features(self) -> set[str]:
        """Feature names the policy refers to (conditions and reason codes), without entity_id."""
        names = {c.feature for r in self.rules for c in r.when}
        names |= {c.feature for s in self.segments for c in s.when}
        names |= set(self.reason_codes)
        names.discard(ENTITY_ID)
        return names


def check_features(policy: Policy, known_features: Iterable[str]) -> None:
    """Raise :class:`PolicyError` if the policy names a feature not in ``known_features``.

    ``entity_id`` is always known (it refers to the event's entity, not a feature).
    """
    known = set(known_features)
    problems: list[str] = []
    for rule in policy.rules:
        problems += [
            f"rule {rule.name}: unknown feature {c.feature!r}"
            for c in rule.when
            if c.feature != ENTITY_ID and c.feature not in known
        ]
    for segment in policy.segments:
        problems += [
            f"segment {segment.name}: unknown feature {c.feature!r}"
            for c in segment.when
            if c.feature != ENTITY_ID and c.feature not in known
        ]
    problems += [
        f"reason_codes: unknown feature {name!r}"
        for name in policy.reason_codes
        if name not in known
    ]
    if problems:
        raise PolicyError(
            f"policy {policy.name} v{policy.version}: " + "; ".join(problems), problems
        )


def _package_dir() -> Any:
    return resources.files("decisioning").joinpath("policies")


def available_policies() -> list[str]:
    """Names of the policies shipped with the package (``decisioning/policies/*.yaml``)."""
    return sorted(
        p.name[: -len(".yaml")] for p in _package_dir().iterdir() if p.name.endswith(".yaml")
    )


def _format_validation(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}" if loc else msg)
    return problems


def parse_policy(
    data: Any, *, source: str = "<policy>", known_features: Iterable[str] | None = None
) -> Policy:
    """Validate a policy mapping (as loaded from YAML); raises :class:`PolicyError`."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy must be a mapping, got {type(data).__name__}")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation(exc)
        raise PolicyError(f"{source}: invalid policy: " + "; ".join(problems), problems) from None
    if known_features is not None:
        check_features(policy, known_features)
    return policy


def load_policy(path_or_name: str | Path, known_features: Iterable[str] | None = None) -> Policy:
    """Load and validate a policy from a YAML file path or a shipped policy name.

    A ``str`` without a path separator or ``.yaml``/``.yml`` suffix names a shipped policy
    (e.g. ``"credit_v1"``). With ``known_features``, every feature the policy names must be
    in it. Raises :class:`PolicyError` (with every problem found) or ``FileNotFoundError``.
    """
    text: str
    if (
        isinstance(path_or_name, Path)
        or "/" in path_or_name
        or path_or_name.endswith((".yaml", ".yml"))
    ):
        path = Path(path_or_name)
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = _package_dir().joinpath(f"{path_or_name}.yaml")
        if not resource.is_file():
            raise FileNotFoundError(
                f"no shipped policy {path_or_name!r}; available: {', '.join(available_policies())}"
            )
        text, source = resource.read_text(encoding="utf-8"), f"decisioning/policies/{path_or_name}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    return parse_policy(data, source=source, known_features=known_features)


def dump_policy(policy: Policy) -> str:
    """The policy as YAML text that :func:`load_policy` reads back to an equal policy."""
    data = policy.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None)


def save_policy(policy: Policy, path: Path) -> Path:
    """Write the policy as YAML to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_policy(policy), encoding="utf-8")
    return path
