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

    rewrites = _rewrites_done(client)
    run.drop_claims(done)
    assert not client.exists(f"decisionflow:claims:{done}:evt-1")
    assert client.exists(f"decisionflow:claims:{later}:evt-1")  # another phase's: kept
    _wait_for_a_rewrite(client, rewrites, "after a phase dropped its claims")

    rewrites = _rewrites_done(client)
    run.close()
    assert not list(client.scan_iter(match=f"*bench-{run.run_id}*"))
    assert client.exists("decisionflow:claims:someone-else:evt-1")  # not the run's: kept
    _wait_for_a_rewrite(client, rewrites, "after the run")
    client.delete("decisionflow:claims:someone-else:evt-1")
    client.close()


def _rewrites_done(client: redis.Redis) -> int:
    """AOF rewrites finished so far (waits for one in progress: it would count later)."""
    deadline = time.monotonic() + 60
    while (info := client.info("persistence"))["aof_rewrite_in_progress"]:
        assert time.monotonic() < deadline, "an AOF rewrite did not finish"
        time.sleep(0.2)
    return int(info["aof_rewrites"])


def _wait_for_a_rewrite(client: redis.Redis, before: int, when: str) -> None:
    deadline = time.monotonic() + 60
    while client.info("persistence")["aof_rewrites"] <= before:
        assert time.monotonic() < deadline, f"no AOF rewrite {when}"
        time.sleep(0.2)
