"""Where the time goes: py-spy samples of a running worker, folded into stages.

``py-spy record --format raw`` writes one line per distinct stack: ``frame;frame;... count``
(root first). Each sample is charged to the deepest frame that names a stage of the
decision path (see :data:`STAGES`, which names frames of both Kafka clients and of both the
per-event and the column-wise engine code); samples naming none are ``other``. A sample whose
leaf is a thread parked on a lock or queue (:data:`WAITS`) is ``waiting``: py-spy's
``--nonblocking`` mode counts a thread as active as soon as it is runnable, so a thread woken
to take a hand-off shows up in its wait call, which is not work on the decision path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["STAGES", "WAITING", "WAITS", "fold_stacks", "record", "stage_seconds"]

# (stage, substring of a py-spy frame "function (file:line)"); order does not matter: the
# deepest matching frame of a stack wins.
STAGES: list[tuple[str, str]] = [
    ("kafka consume (poll/fetch)", "poll (kafka/consumer/group.py"),
    ("kafka consume (poll/fetch)", "consume (confluent"),
    ("kafka consume (poll/fetch)", "poll (workers/kafka_confluent.py"),
    ("kafka consume (poll/fetch)", "poll (workers/kafka_python.py"),
    ("parse + validate events", "_parse (workers/engine.py"),
    ("parse + validate events", "(decisioning/batch_decode.py"),
    ("parse + validate events", "(decisioning/validation.py"),
    ("features frame", "features_from_records (models/data.py"),
    ("model encode", "(models/encoding.py"),
    ("model forward", "predict_proba ("),
    ("model explain (reason contributions)", "explain (models/registry.py"),
    ("model explain (reason contributions)", "_explain (models/families/"),
    ("model explain (reason contributions)", "contributions (models/"),
    ("policy decide", "decide_batch (decisioning/decide.py"),
    ("policy decide", "decide_columns (decisioning/decide.py"),
    ("build decision records", "build_decisions (decisioning/assemble.py"),
    ("serialise decisions (JSON)", "model_dump_json ("),
    ("serialise decisions (JSON)", "(decisioning/decision_encode.py"),
    ("serialise decisions (JSON)", "encode_record (decisioning/contracts.py"),
    ("kafka produce (send)", "send (kafka/producer/kafka.py"),
    ("kafka produce (send)", "send (workers/kafka_confluent.py"),
    ("kafka record batches + crc32c (pure Python)", "(kafka/record/"),
    ("kafka transaction (flush + offsets + commit)", "send_offsets_to_transaction ("),
    ("kafka transaction (flush + offsets + commit)", "commit_transaction ("),
    ("kafka transaction (flush + offsets + commit)", "begin_transaction ("),
    ("kafka transaction (flush + offsets + commit)", "flush (workers/kafka_"),
    ("kafka client network thread", "_run_once (kafka/producer/sender.py"),
    ("kafka client network thread", "(kafka/net/"),
    ("kafka client network thread", "(kafka/client_async.py"),
    ("scoring thread hand-off", "_score (workers/engine.py"),
    ("event-id claims (Redis)", "claim (workers/idempotency.py"),
    ("metrics", "(workers/metrics.py"),
    ("metrics", "_observe (workers/decide_loop.py"),
]

WAITING = "waiting (threads parked on a lock or queue: not work)"
# leaf frames ("function (file:" ...) of a thread parked in a wait; the pool worker's only
# leaf line outside its work items is its queue get
WAITS: tuple[str, ...] = (
    "Condition.wait (threading.py:",
    "Event.wait (threading.py:",
    "Thread._wait_for_tstate_lock (threading.py:",
    "_worker (concurrent/futures/thread.py:",
    "Queue.get (queue.py:",
)


def _stage(frames: list[str]) -> str:
    if frames and frames[-1].startswith(WAITS):
        return WAITING
    for frame in reversed(frames):  # leaf first: the deepest named stage wins
        for stage, needle in STAGES:
            if needle in frame:
                return stage
    return "other"


def fold_stacks(text: str) -> dict[str, Any]:
    """Per-stage share of samples and the top leaf functions, from py-spy raw output."""
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        stages[_stage(frames)] += n
        leaves[frames[-1]] += n
    if total == 0:
        return {"samples": 0, "stages": {}, "top_leaves": []}
    return {
        "samples": total,
        "stages": {k: round(100.0 * v / total, 1) for k, v in stages.most_common()},
        "top_leaves": [
            {"frame": k, "pct": round(100.0 * v / total, 1)} for k, v in leaves.most_common(12)
        ],
    }


def record(pid: int, seconds: float, out: Path, rate: int = 100) -> dict[str, Any]:
    """Sample ``pid`` for ``seconds`` with py-spy (active threads only), then fold it."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)),
        "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed ({proc.returncode}): {proc.stderr[-500:]}"}
    folded = fold_stacks(out.read_text())
    folded["raw_file"] = str(out)
    folded["rate_hz"] = rate
    return folded


def stage_seconds(profile: dict[str, Any]) -> dict[str, float]:
    """Python thread-seconds per stage of a folded profile (samples / sampling rate), for
    a per-event figure once divided by the events decided while it sampled."""
    samples, rate = profile.get("samples", 0), profile.get("rate_hz")
    if not samples or not rate:
        return {}
    return {k: pct / 100.0 * samples / rate for k, pct in profile.get("stages", {}).items()}
