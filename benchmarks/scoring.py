"""In-process engine stages: seconds per batch of each stage, by batch size, no Kafka.

The result is generic: per batch size a dict ``stage name -> seconds per batch`` (the report
prints µs per event per stage, whatever the stages are). :func:`engine_stages` is the one
place that knows the engine's steps: a new engine (a columnar one, say) plugs in by returning
its own ``{stage: callable}``; stages whose callable raises are left out and their error kept.

Runs on the model's device (cuda when torch sees one, else cpu), with the worker's torch
threads and GC setting, on an engine wired like a worker's (:func:`workers.bootstep.build_loop`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from benchmarks.targets import ENGINE_TOTAL

ENGINE_UNCLAIMED = "engine total without event-id claims (not the verdict)"

__all__ = ["device_info", "engine_stages", "make_engine", "run_scoring", "time_stages"]

StageFn = Callable[[], object]


def device_info() -> dict[str, Any]:
    """The device the in-process benchmark uses, and why."""
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "torch": torch.__version__}
    return {
        "device": "cpu",
        "cuda": "no CUDA device available",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def make_engine(
    registry: Path, device: Literal["auto", "cpu", "cuda"] = "auto", claims: bool = True
) -> Any:
    """A decision engine wired exactly like a worker's (champion of ``credit_data``, policy
    ``credit_v1``, no challenger or shadow; event-id claims in Redis unless ``claims`` is
    False); the caller closes it."""
    from workers.bootstep import build_loop
    from workers.settings import WorkerSettings

    settings = WorkerSettings(
        registry_url=str(registry),
        model_name="credit_data",
        policy="credit_v1",
        device=device,
        challenger_policy=None,
        challenger_model=None,
        challenger_share=0.0,
        shadow_share=0.0,
        metrics_port=0,
        **({} if claims else {"dedupe_window_s": 0.0}),
    )
    loop, _holder = build_loop(settings, "bench-in-process")
    return loop.engine


def time_stages(
    stages: Mapping[str, StageFn],
    min_seconds: float,
    sync: Callable[[], None] = lambda: None,
    rounds: int = 1,
) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per call of each stage: the median of ``rounds`` rounds, each of at least 3
    calls and ``min_seconds`` (after one warm-up call). The rounds go over every stage in
    turn, so a slow spell of the host spreads over the stages instead of landing on one. A
    stage whose warm-up raises is left out; its error is returned."""
    errors: dict[str, str] = {}
    live: dict[str, StageFn] = {}
    for name, fn in stages.items():
        try:
            fn()
        except Exception as exc:  # a stage the engine no longer has: skip it, say why
            errors[name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        live[name] = fn
    timed: dict[str, list[float]] = {name: [] for name in live}
    for _ in range(max(rounds, 1)):
        for name, fn in live.items():
            sync()
            reps = 0
            t0 = time.perf_counter()
            while True:
                fn()
                reps += 1
                if reps >= 3 and time.perf_counter() - t0 >= min_seconds:
                    break
            sync()
            timed[name].append((time.perf_counter() - t0) / reps)
    return {name: statistics.median(values) for name, values in timed.items()}, errors


def engine_stages(
    engine: Any, model: Any, batch: Sequence[Any], unclaimed: Any = None
) -> dict[str, StageFn]:
    """``{stage: callable}`` for one batch of raw records; THE plug-in point for an engine.

    The step stages are the per-event path (``validate_event``, ``features_from_records``,
    encode, forward, explain, ``decide_batch``, ``build_decisions``, ``encode_record``), each
    on precomputed inputs; replace them with the columnar engine's steps when it lands. The
    last stage is always the engine itself (``process`` + ``records()``: what a worker sends),
    whatever it does inside; with ``unclaimed`` (the same engine without event-id claims) the
    one before it shows what the claims' round trip to Redis adds."""
    from decisioning.assemble import build_decisions
    from decisioning.contracts import encode_record
    from decisioning.decide import decide_batch
    from decisioning.policy import load_policy
    from decisioning.validation import FeatureChecker, validate_event
    from models.data import features_from_records
    from workers.settings import Topics

    topics = Topics()
    spec = model.spec
    stages: dict[str, StageFn] = {}
    try:
        checker = FeatureChecker({c.name: c.type for c in spec.columns}, spec.name)
        stages["row path: decode + validate (json + pydantic)"] = lambda: [
            validate_event(r.value or b"", 1 << 20, checker) for r in batch
        ]
        events = [validate_event(r.value or b"", 1 << 20, checker) for r in batch]
        feats = [e.features for e in events]
        ids = [e.entity_id for e in events]
        stages["row path: features frame (pandas)"] = lambda: features_from_records(feats, spec)
        frame = features_from_records(feats, spec)
        stages["row path: encode"] = lambda: model.encode(frame)
        enc = model.encode(frame)
        family = model.model
        stages["row path: model forward"] = lambda: family.predict_proba(enc)
        method = getattr(family, "explain_methods", ("default",))[0]
        stages[f"row path: explain ({method}, all rows)"] = lambda: family.contributions(enc)
        scores, contributions = family.predict_proba(enc), family.contributions(enc)
        policy = load_policy("credit_v1", known_features=spec.feature_names)
        names = spec.feature_names
        stages["row path: policy (decide_batch)"] = lambda: decide_batch(
            policy, frame, scores, contributions, names, ids
        )
        parts = decide_batch(policy, frame, scores, contributions, names, ids)
        from datetime import UTC, datetime

        def assemble() -> list[Any]:
            return build_decisions(
                events, parts, policy=policy, model_name=spec.name, model_version=1,
                arms=["champion"] * len(events), shadow=False, decided_at=datetime.now(UTC),
            )  # fmt: skip

        stages["row path: Decision objects + hash"] = assemble
        decisions = assemble()
        stages["row path: JSON encode"] = lambda: [encode_record(d) for d in decisions]
    except Exception as exc:  # the engine's steps changed: the total below still runs
        stages[f"(step stages unavailable: {type(exc).__name__})"] = _raise(exc)
    try:
        stages.update(_columnar_stages(engine, model, batch))
    except Exception as exc:
        stages[f"(columnar stages unavailable: {type(exc).__name__})"] = _raise(exc)
    if unclaimed is not None:
        stages[ENGINE_UNCLAIMED] = lambda: list(unclaimed.process(batch).records(topics))
    stages[ENGINE_TOTAL] = lambda: list(engine.process(batch).records(topics))
    return stages


def _columnar_stages(engine: Any, model: Any, batch: Sequence[Any]) -> dict[str, StageFn]:
    """The column-wise engine's steps (what ``engine.process`` runs), one by one."""
    from datetime import UTC, datetime

    import numpy as np

    from decisioning.batch_decode import BatchDecoder
    from decisioning.decide import decide_columns
    from decisioning.decision_encode import encode_decisions

    spec = model.spec
    policy = engine.champion.policy
    names = spec.feature_names
    decoder = BatchDecoder({c.name: c.type for c in spec.columns}, spec.name, 1 << 20)
    raws = [r.value or b"" for r in batch]
    cols = decoder.decode(raws).columns
    n = len(cols)
    enc = model.encode_columns(cols.features, n)
    family = model.model
    scores = family.predict_proba(enc)
    method = policy.reasons
    parts = decide_columns(policy, cols.features, cols.entity_id, scores, None, names)
    wanted = set(policy.explain_only or policy.decisions)
    rows = np.array([i for i, d in enumerate(parts.decision) if d in wanted], dtype=np.intp)
    contributions, used = family.explain(enc.take(rows), method)
    full = np.zeros((n, len(names)))
    full[rows] = contributions
    share = _reasons_for(policy)

    def policy_step() -> Any:
        return decide_columns(
            policy, cols.features, cols.entity_id, scores, lambda r: full[r], names
        )

    decided = policy_step()
    now = datetime.now(UTC)
    return {
        "columnar: decode + validate (msgspec)": lambda: decoder.decode(raws),
        "columnar: model inputs from columns": lambda: model.encode_columns(cols.features, n),
        "columnar: model forward": lambda: family.predict_proba(enc),
        f"columnar: explain ({used}, {share})": lambda: family.explain(enc.take(rows), method),
        "columnar: policy (vectorised)": policy_step,
        "columnar: serialise decisions": lambda: encode_decisions(
            cols,
            decided,
            model_name=spec.name,
            model_version=1,
            policy_name=policy.name,
            policy_version=policy.version,
            arms="champion",
            shadow=False,
            decided_at=now,
            reason_method=used,
        ),
    }


def _reasons_for(policy: Any) -> str:
    """Which rows the policy explains: ``all rows`` or ``review+decline only``."""
    return "all rows" if policy.explain_only is None else "+".join(policy.explain_only) + " only"


def _raise(exc: Exception) -> StageFn:
    def fn() -> object:
        raise exc

    return fn


def run_scoring(
    registry: Path,
    records: Sequence[Any],
    batch_sizes: Sequence[int],
    min_seconds: float,
    rounds: int = 1,
) -> dict[str, Any]:
    """Per batch size, seconds per batch of every stage of :func:`engine_stages` (the
    median of ``rounds`` rounds)."""
    import torch

    from models.registry import ModelRegistry

    info = device_info()
    engine, unclaimed = make_engine(registry), make_engine(registry, claims=False)
    model = ModelRegistry(registry).load("credit_data", "champion", device=info["device"])
    sync: Callable[[], None] = (
        torch.cuda.synchronize if info["device"] == "cuda" else (lambda: None)
    )
    rows: list[dict[str, Any]] = []
    try:
        for n in batch_sizes:
            batch = [records[i % len(records)] for i in range(n)]
            stages = engine_stages(engine, model, batch, unclaimed)
            seconds, errors = time_stages(stages, min_seconds, sync, rounds)
            rows.append({"batch": n, "seconds": seconds, **({"errors": errors} if errors else {})})
    finally:
        engine.close()
        unclaimed.close()
    policy = engine.champion.policy
    reasons = f"{policy.reasons}, {_reasons_for(policy)}"
    return {"device": info, "family": model.family, "reasons": reasons, "rounds": rounds,
            "rows": rows}  # fmt: skip
