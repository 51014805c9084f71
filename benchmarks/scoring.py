"""Scoring micro-benchmark: rows/s by batch size, in this process, no Kafka.

For each batch size it times, on the model's device (cuda when torch sees one, else cpu):

* ``bare_torch``: ``net(numeric, categorical)`` on tensors already on the device — the floor
  of what the model costs;
* ``score``: ``LoadedModel.score(frame)`` — encoding + forward + copy back;
* ``score_explain``: ``LoadedModel.score_explain`` — one encoding, forward + integrated
  gradients: what the engine calls;
* ``engine``: ``DecisionEngine.process(records)`` — JSON parse, validation, features, score,
  explain, policy, decision records;
* ``engine_serialise``: ``engine`` + ``model_dump_json`` of every decision (what the loop
  then sends).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["device_info", "run_scoring"]


def device_info() -> dict[str, Any]:
    """The device the scoring benchmark uses, and why."""
    import torch

    if torch.cuda.is_available():
        return {
            "device": "cuda",
            "name": torch.cuda.get_device_name(0),
            "torch": torch.__version__,
        }
    return {
        "device": "cpu",
        "cuda": "no CUDA device available",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _rate(
    fn: Callable[[], object], rows: int, min_seconds: float, sync: Callable[[], None]
) -> float:
    fn()  # warm-up
    sync()
    reps = 0
    t0 = time.perf_counter()
    while True:
        fn()
        reps += 1
        if reps >= 3 and time.perf_counter() - t0 >= min_seconds:
            break
    sync()
    return rows * reps / (time.perf_counter() - t0)


def run_scoring(
    registry_root: str,
    records: list[Any],
    batch_sizes: list[int],
    min_seconds: float,
) -> dict[str, Any]:
    """Rows/s per batch size for every stage listed in the module docstring."""
    import torch

    from decisioning.policy import load_policy
    from models.data import features_from_records
    from models.registry import ModelRegistry
    from workers.bootstep import tune_process
    from workers.engine import DecisionEngine
    from workers.settings import WorkerSettings

    tune_process(WorkerSettings())  # torch threads and GC as in a worker
    info = device_info()
    model = ModelRegistry(registry_root).load("credit_data", "champion", device=info["device"])
    net = model.model.net  # type: ignore[attr-defined]
    engine = DecisionEngine(
        model, load_policy("credit_v1", known_features=model.spec.feature_names), model.spec
    )
    sync: Callable[[], None] = (
        torch.cuda.synchronize if info["device"] == "cuda" else (lambda: None)
    )
    from decisioning.contracts import encode_record
    from decisioning.validation import parse_event

    rows: list[dict[str, Any]] = []
    for n in batch_sizes:
        batch = [records[i % len(records)] for i in range(n)]
        feats = [parse_event(r.value, 1 << 20).features for r in batch]
        frame = features_from_records(feats, model.spec)
        enc = model.encode(frame)
        num = torch.from_numpy(enc.numeric.copy()).to(info["device"])
        cat = torch.from_numpy(enc.categorical.copy()).to(info["device"])

        def bare(num: Any = num, cat: Any = cat) -> object:
            with torch.inference_mode():
                return net(num, cat)

        def score(frame: Any = frame) -> object:
            return model.score(frame)

        def score_explain(frame: Any = frame) -> object:
            return model.score_explain(frame)

        def decide(batch: list[Any] = batch) -> object:
            return engine.process(batch)

        def serialise(batch: list[Any] = batch) -> object:
            out = engine.process(batch)
            return [encode_record(d) for d in out.decisions]

        rows.append(
            {
                "batch": n,
                "bare_torch": _rate(bare, n, min_seconds, sync),
                "score": _rate(score, n, min_seconds, sync),
                "score_explain": _rate(score_explain, n, min_seconds, sync),
                "engine": _rate(decide, n, min_seconds, sync),
                "engine_serialise": _rate(serialise, n, min_seconds, sync),
            }
        )
    engine.close()
    return {"device": info, "family": model.family, "rows": rows}
