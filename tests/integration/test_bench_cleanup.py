"""A benchmark run cleans Redis up after itself: a phase's claims when its workers stop, every
key of the run at the end, then a rewrite of the append-only file (which still held every claim
the run wrote: 2 GB after a soak, 31 s for Redis to load on its next start)."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from benchmarks.harness import Run
from workers.settings import WorkerSettings


def test_a_run_drops_its_claims_and_compacts_the_append_only_file(
    bootstrap: str, worker_settings: WorkerSettings, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(worker_settings.redis_url)
    run = Run(bootstrap, worker_settings.redis_url, tmp_path)
    done, later = run.name("done"), run.name("later")
    for group in (done, later):
        client.set(f"decisionflow:claims:{group}:evt-1", "t/0/1", ex=600)
    client.set("decisionflow:claims:someone-else:evt-1", "t/0/1", ex=600)

    run.drop_claims(done)
    assert not client.exists(f"decisionflow:claims:{done}:evt-1")
    assert client.exists(f"decisionflow:claims:{later}:evt-1")  # another phase's: kept

    rewrites = client.info("persistence")["aof_rewrites"]
    run.close()
    assert not list(client.scan_iter(match=f"*bench-{run.run_id}*"))
    assert client.exists("decisionflow:claims:someone-else:evt-1")  # not the run's: kept
    deadline = time.monotonic() + 60
    while client.info("persistence")["aof_rewrites"] <= rewrites:
        assert time.monotonic() < deadline, "no AOF rewrite after the run"
        time.sleep(0.2)
    client.delete("decisionflow:claims:someone-else:evt-1")
    client.close()
