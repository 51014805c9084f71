"""Cost-optimal cut-offs for a flow's policy as a new policy version, its promotion with an
audit trail, and the one lookup of the policy a flow decides with.

**Optimise** (:func:`optimise_flow_policy`; ``decisionflow policy optimise`` and the retrain
DAG's ``policy`` task): the flow's champion scores labelled rows (its registered holdout by
default: the training run's ``holdout.parquet``, else the spec's dataset split again as
training did); :func:`~decisioning.thresholds.optimal_cutoffs` finds the cut-offs that maximise
the expected value on the rows the optimised bands decide (no hard rule matched; the default
bands: no segment matched, else the named segment's rows); the policy with those bands is
written as the next version (``1.1`` -> ``1.2``). Old and new policy are valued as a whole
(rules, segments, bands) on every row, per 1,000 decisions. The new value is in-sample: the
cut-offs were chosen on the same rows.

**Promote** (:func:`promote_policy`): ``promoted.json`` names the version the flow now uses and
``history.jsonl`` records who, when, why, old and new (append-only, like the registry's alias
history). Files per flow, under :func:`models.paths.policies_dir` (``var/policies``)::

    <flow>/<policy>-<version>.yaml   every version written (never overwritten)
    <flow>/promoted.json             the version in use: file, version, sha256
    <flow>/history.jsonl             one JSON object per promotion

**Lookup** (:func:`flow_policy_ref`): the promoted file when the flow has one (its sha256 must
match), else the flow's own ``policy``. Whatever decides for a flow resolves its policy there.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from decisioning.decide import decide_columns
from decisioning.flow import Flow, load_flow
from decisioning.policy import Band, Policy, PolicyError, dump_policy, load_policy
from decisioning.thresholds import Costs, Cutoffs, apply_cutoffs, decision_values, optimal_cutoffs
from models import paths
from models.data import labels, load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from pipelines.optimise import registered_holdout

__all__ = [
    "DECISIONS",
    "Optimised",
    "PolicyRun",
    "bump_version",
    "flow_policy_dir",
    "flow_policy_ref",
    "optimise_cutoffs",
    "optimise_flow_policy",
    "optimise_policy_step",
    "policy_history",
    "promote_policy",
    "write_policy_version",
]

log = logging.getLogger(__name__)

#: The decisions of the approve / review / decline bands (low to high risk).
DECISIONS = ("approve", "review", "decline")
PROMOTED_FILE = "promoted.json"
HISTORY_FILE = "history.jsonl"
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def bump_version(version: str) -> str:
    """The next version: the last number goes up by one (``1.1`` -> ``1.2``, ``v3`` -> ``v4``,
    ``1.9`` -> ``1.10``); a version without a number gets ``.1`` appended."""
    match = _LAST_NUMBER.search(version)
    if match is None:
        return f"{version}.1"
    return f"{version[: match.start()]}{int(match.group(1)) + 1}{version[match.end() :]}"


# ------------------------------------------------------------------------------ pure part


def _ranges(bands: Sequence[Band]) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for band in bands:
        out.setdefault(band.decision, []).append([band.lower, band.upper])
    return out


def _bands_of(policy: Policy, segment: str | None) -> list[Band]:
    if segment is None:
        return list(policy.bands)
    return next(list(s.bands) for s in policy.segments if s.name == segment)


@dataclass(frozen=True)
class Optimised:
    """Cost-optimal cut-offs of one band set, as a new policy, and what they are worth."""

    old: Policy
    new: Policy
    segment: str | None
    """The optimised band set: None for the default bands, else a segment's name."""
    cutoffs: Cutoffs
    """The optimum on the ``rows`` rows those bands decide."""
    rows: int
    n: int
    """Rows valued (every labelled row)."""
    old_value: float
    """Mean value per decision of the old policy (rules, segments and bands), all rows."""
    new_value: float
    costs: Costs

    def band_diff(self) -> list[dict[str, Any]]:
        """Per decision of the optimised band set: its old and new ``[from, to)`` ranges."""
        old = _ranges(_bands_of(self.old, self.segment))
        new = _ranges(_bands_of(self.new, self.segment))
        return [
            {"decision": d, "old": old.get(d, []), "new": new.get(d, [])}
            for d in dict.fromkeys([*old, *new])
        ]


def _row_values(
    decided: Sequence[str], bad: NDArray[np.bool_], costs: Costs, decisions: Sequence[str]
) -> NDArray[np.float64]:
    """Each row's value under the decision it got."""
    names = np.asarray(decided, dtype=object)
    unknown = sorted(set(names.tolist()) - set(decisions))
    if unknown:
        raise PolicyError(
            f"decision(s) {unknown} have no value: only {list(decisions)} are costed "
            "(approve, review, decline)"
        )
    out = np.zeros(names.shape[0], dtype=np.float64)
    for name, values in zip(decisions, decision_values(bad, costs), strict=True):
        hit = names == name
        out[hit] = values[hit]
    return out


def optimise_cutoffs(
    policy: Policy,
    features: pd.DataFrame,
    entity_ids: Sequence[str],
    scores: ArrayLike,
    bad: ArrayLike,
    costs: Costs,
    *,
    version: str,
    segment: str | None = None,
    decisions: Sequence[str] = DECISIONS,
) -> Optimised:
    """The policy ``version`` whose default bands (or ``segment``'s) are cost-optimal.

    ``features`` (one row per labelled example; the columns the policy's conditions read),
    ``entity_ids``, the model's risk ``scores`` and ``bad`` (1/True where the outcome is the
    positive, risky class) describe the evaluation rows. The cut-offs are optimised on the rows
    those bands decide; the old and new policy are valued whole on every row. Raises
    :class:`~decisioning.policy.PolicyError` (ValueError) when the policy does not fit.
    """
    missing = [d for d in decisions if d not in policy.decisions]
    if missing:
        raise PolicyError(f"policy {policy.name} v{policy.version} lacks decision(s) {missing}")
    if segment is not None and segment not in {s.name for s in policy.segments}:
        names = [s.name for s in policy.segments]
        raise PolicyError(f"policy {policy.name} has no segment {segment!r} (segments: {names})")
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    is_bad = np.asarray(bad).reshape(-1).astype(bool)
    ids = list(entity_ids)
    old = decide_columns(policy, features, ids, score, None, [])
    rows = np.array(
        [
            src == "model" and seg == segment
            for src, seg in zip(old.source, old.segment, strict=True)
        ],
        dtype=bool,
    )
    where = "default bands" if segment is None else f"bands of segment {segment!r}"
    if not rows.any():
        raise ValueError(f"no labelled row is decided by the {where} of policy {policy.name}")
    cut = optimal_cutoffs(is_bad[rows], score[rows], costs, positive_label=True)
    new = apply_cutoffs(
        policy,
        cut.approve_below,
        cut.decline_from,
        version=version,
        segment=segment,
        decisions=decisions,
    )
    decided = decide_columns(new, features, ids, score, None, [])
    return Optimised(
        old=policy,
        new=new,
        segment=segment,
        cutoffs=cut,
        rows=int(rows.sum()),
        n=len(ids),
        old_value=float(_row_values(old.decision, is_bad, costs, decisions).mean()),
        new_value=float(_row_values(decided.decision, is_bad, costs, decisions).mean()),
        costs=costs,
    )


# ------------------------------------------------------------------------------ files


def flow_policy_dir(flow_name: str, root: Path | None = None) -> Path:
    """The flow's policy folder: ``<policies_dir>/<flow>`` (see the module docstring)."""
    return (root or paths.policies_dir()) / paths.safe_part(flow_name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_promoted(folder: Path) -> dict[str, Any] | None:
    pointer = folder / PROMOTED_FILE
    if not pointer.is_file():
        return None
    doc: dict[str, Any] = json.loads(pointer.read_text(encoding="utf-8"))
    return doc


def _as_flow(flow: Flow | str) -> Flow:
    return flow if isinstance(flow, Flow) else load_flow(flow)


def flow_policy_ref(flow: Flow | str, root: Path | None = None) -> str:
    """The policy a flow decides with: its promoted version's file when it has one, else the
    flow's own ``policy`` (a shipped name or path). A promoted file that is gone or changed
    since its promotion raises :class:`~decisioning.policy.PolicyError`: never a silent
    fallback to other cut-offs."""
    f = _as_flow(flow)
    folder = flow_policy_dir(f.name, root)
    pointer = _read_promoted(folder)
    if pointer is None:
        return f.policy
    path = folder / str(pointer["file"])
    if not path.is_file() or _sha256(path) != pointer["sha256"]:
        raise PolicyError(
            f"flow {f.name}: the promoted policy {path} is missing or changed since its "
            f"promotion (sha256 {pointer['sha256']}); promote a version again"
        )
    return str(path)


def _version_file(folder: Path, policy_name: str, version: str) -> Path:
    return folder / f"{paths.safe_part(policy_name)}-{paths.safe_part(version)}.yaml"


def _next_version(folder: Path, policy: Policy) -> str:
    version = bump_version(policy.version)
    while _version_file(folder, policy.name, version).exists():
        version = bump_version(version)
    return version


def write_policy_version(flow_name: str, policy: Policy, root: Path | None = None) -> Path:
    """Write ``policy`` into the flow's folder as a new file (never overwrites one)."""
    folder = flow_policy_dir(flow_name, root)
    folder.mkdir(parents=True, exist_ok=True)
    path = _version_file(folder, policy.name, policy.version)
    with path.open("x", encoding="utf-8") as fh:  # FileExistsError: that version exists
        fh.write(dump_policy(policy))
    return path


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


def _find_version(folder: Path, version: str) -> Path:
    hits = [
        p for p in sorted(folder.glob("*.yaml")) if p.stem.endswith(f"-{paths.safe_part(version)}")
    ]
    hits = [p for p in hits if load_policy(p).version == version]
    if len(hits) != 1:
        written = sorted(load_policy(p).version for p in folder.glob("*.yaml"))
        raise ValueError(
            f"no single policy version {version!r} in {folder} (written versions: {written})"
        )
    return hits[0]


def promote_policy(
    flow: Flow | str,
    version: str,
    *,
    who: str | None = None,
    why: str = "",
    details: Mapping[str, Any] | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Make a written ``version`` the flow's policy and record who, when, why, old and new.

    The version must validate against the flow's spec (every feature it names exists).
    Returns the history record.
    """
    f = _as_flow(flow)
    folder = flow_policy_dir(f.name, root)
    with _locked(folder):
        path = _find_version(folder, version)
        policy = load_policy(path, known_features=load_spec(f.spec).feature_names)
        old_ref = flow_policy_ref(f, root)
        old = load_policy(old_ref)
        sha = _sha256(path)
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        pointer = {"file": path.name, "version": policy.version, "sha256": sha, "ts": ts}
        tmp = folder / f".{PROMOTED_FILE}.tmp"
        tmp.write_text(json.dumps(pointer, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, folder / PROMOTED_FILE)
        event = {
            "ts": ts,
            "flow": f.name,
            "action": "promote",
            "who": who or _who(),
            "why": why,
            "old": {"ref": old_ref, "name": old.name, "version": old.version},
            "new": {"ref": str(path), "name": policy.name, "version": policy.version},
            "sha256": sha,
            "details": dict(details) if details is not None else None,
        }
        with (folder / HISTORY_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return event


def policy_history(flow: Flow | str, root: Path | None = None) -> list[dict[str, Any]]:
    """The flow's policy promotions, oldest first."""
    path = flow_policy_dir(_as_flow(flow).name, root) / HISTORY_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ------------------------------------------------------------------------------ the step


def _fmt_ranges(ranges: Sequence[Sequence[float]]) -> str:
    if not ranges:
        return "-"
    return ", ".join(f"[{lo:.4g}, {hi:.4g}{']' if hi >= 1.0 else ')'}" for lo, hi in ranges)


@dataclass(frozen=True)
class PolicyRun:
    """One optimisation of a flow's policy: the result, where it came from, what was written."""

    flow: str
    model: str
    model_version: int
    source: str
    old_ref: str
    path: Path
    optimised: Optimised
    promotion: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the DAG task's XCom, the CLI's ``--json``)."""
        opt, cut = self.optimised, self.optimised.cutoffs
        return {
            "flow": self.flow,
            "model": self.model,
            "model_version": self.model_version,
            "source": self.source,
            "rows": opt.n,
            "optimised_rows": opt.rows,
            "segment": opt.segment,
            "costs": opt.costs.model_dump(),
            "old": {"ref": self.old_ref, "version": opt.old.version},
            "new": {"ref": str(self.path), "version": opt.new.version},
            "cutoffs": {
                "approve_below": cut.approve_below,
                "decline_from": cut.decline_from,
                "approve_rate": cut.approve_rate,
                "review_rate": cut.review_rate,
                "decline_rate": cut.decline_rate,
            },
            "band_diff": opt.band_diff(),
            "value_per_1000": {"old": 1000 * opt.old_value, "new": 1000 * opt.new_value},
            "promoted": self.promotion is not None,
            "promotion": self.promotion,
        }

    def render(self) -> str:
        """The band diff and the expected values, for people."""
        opt = self.optimised
        where = "default bands" if opt.segment is None else f"segment {opt.segment}"
        old, new = opt.old, opt.new
        lines = [
            f"flow {self.flow}: champion {self.model} v{self.model_version} on {opt.n:,} "
            f"labelled rows ({self.source})",
            f"cut-offs of the {where} (optimised on {opt.rows:,} rows; policy {old.name} "
            f"{old.version} -> {new.version}):",
            f"  {'decision':<10}{'old':<24}new",
        ]
        lines += [
            f"  {row['decision']:<10}{_fmt_ranges(row['old']):<24}{_fmt_ranges(row['new'])}"
            for row in opt.band_diff()
        ]
        before, after = 1000 * opt.old_value, 1000 * opt.new_value
        lines += [
            "expected value per 1,000 decisions (whole policy; the new cut-offs in-sample):",
            f"  old {old.version:<8}{before:>12,.1f}",
            f"  new {new.version:<8}{after:>12,.1f}  ({after - before:+,.1f})",
            f"written: {self.path}",
            (
                f"promoted: flow {self.flow} now decides with {new.name} {new.version}"
                if self.promotion is not None
                else f"not promoted: `decisionflow policy promote --flow {self.flow} "
                f"--version {new.version}` applies it"
            ),
        ]
        return "\n".join(lines)


def _registry(registry: ModelRegistry | str | None) -> ModelRegistry:
    return registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)


def optimise_flow_policy(
    flow: Flow | str,
    costs: Costs,
    *,
    registry: ModelRegistry | str | None = None,
    source: str | None = None,
    holdout: str | None = None,
    segment: str | None = None,
    apply: bool = False,
    who: str | None = None,
    why: str | None = None,
    root: Path | None = None,
) -> PolicyRun:
    """Optimise the cut-offs of the flow's current policy for its champion, write the next
    version and, with ``apply``, promote it (see the module docstring).

    The labelled rows: ``holdout`` (a CSV/Parquet file, used whole), else the champion's
    registered holdout (``source`` replaces the spec's dataset when it has to be split again).
    """
    if source is not None and holdout is not None:
        raise ValueError("give a source to split or a holdout to use whole, not both")
    f = _as_flow(flow)
    reg = _registry(registry)
    model = reg.load(f.model_name, "champion", device="cpu")
    if holdout is not None:
        frame, origin = load_frame(model.spec, holdout), f"holdout {holdout}"
    else:
        frame, info = registered_holdout(reg, f.model_name, model.version, source)
        origin = str(info["source"])
    old_ref = flow_policy_ref(f, root)
    policy = load_policy(old_ref, known_features=model.spec.feature_names)
    folder = flow_policy_dir(f.name, root)
    ids = frame[model.spec.entity_key.column].astype(str).tolist()
    result = optimise_cutoffs(
        policy,
        frame,
        ids,
        model.score(frame),
        labels(frame, model.spec),
        costs,
        version=_next_version(folder, policy),
        segment=segment,
    )
    path = write_policy_version(f.name, result.new, root)
    run = PolicyRun(f.name, f.model_name, model.version, origin, old_ref, path, result, None)
    if not apply:
        return run
    detail = run.to_dict()
    reason = why or (
        f"cost-optimal cut-offs for {f.model_name} v{model.version} on {result.n} rows "
        f"({origin}); value per 1,000: {detail['value_per_1000']['old']:.1f} -> "
        f"{detail['value_per_1000']['new']:.1f}"
    )
    keep = ("costs", "cutoffs", "value_per_1000", "model_version", "source", "segment")
    event = promote_policy(
        f, result.new.version, who=who, why=reason, details={k: detail[k] for k in keep}, root=root
    )
    return PolicyRun(f.name, f.model_name, model.version, origin, old_ref, path, result, event)


def optimise_policy_step(
    work_dir: str,
    flow: str,
    registry_url: str,
    *,
    gain_good_approved: float,
    loss_bad_approved: float,
    review_cost: float,
    apply: bool = False,
    who: str | None = None,
) -> dict[str, Any]:
    """The retrain DAG's step: optimise on the run's ``holdout.parquet`` (the new champion
    never trained on it). Writes ``policy.json``; idempotent per run."""
    out = Path(work_dir)
    done = out / "policy.json"
    if done.is_file():
        doc: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        return doc
    costs = Costs(
        gain_good_approved=gain_good_approved,
        loss_bad_approved=loss_bad_approved,
        review_cost=review_cost,
    )
    run = optimise_flow_policy(
        flow, costs, registry=registry_url, holdout=str(out / "holdout.parquet"), apply=apply,
        who=who,
    )  # fmt: skip
    log.info("policy optimisation\n%s", run.render())
    doc = run.to_dict()
    done.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return doc
