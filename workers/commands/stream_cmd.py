"""`decisionflow produce` and `decisionflow worker`: the streaming side of the CLI."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Sequence

import click

__all__ = ["celery_worker_args", "register"]


@click.command()
@click.option(
    "--flow",
    "flow_name",
    default=None,
    help="Decision flow (name or YAML path): its spec and events topic.",
)
@click.option(
    "--spec",
    "spec_name",
    default=None,
    help="Feature spec name or YAML path [default: the flow's, else credit_data].",
)
@click.option("--source", default=None, help="CSV/Parquet path (default: the spec's dataset).")
@click.option(
    "--rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Events per second; 0 streams flat out.",
)
@click.option("--limit", type=int, default=None, help="Stop after this many rows.")
@click.option("--skip", type=int, default=0, help="Skip this many rows first.")
@click.option(
    "--repeat",
    type=int,
    default=1,
    show_default=True,
    help="Stream the rows this many times (fresh event ids each time).",
)
@click.option(
    "--malformed",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of malformed events mixed in (they must land in the DLQ).",
)
@click.option("--topic", default=None, help="Target topic (default: settings' events topic).")
@click.option("--id-prefix", default="", help="Prefix of every event_id (e.g. a run id).")
@click.option("--seed", type=int, default=7, show_default=True)
def produce(
    flow_name: str | None,
    spec_name: str | None,
    source: str | None,
    rate: float,
    limit: int | None,
    skip: int,
    repeat: int,
    malformed: float,
    topic: str | None,
    id_prefix: str,
    seed: int,
) -> None:
    """Stream a dataset's rows as events to Kafka, with a progress bar."""
    from tqdm import tqdm

    from models.data import load_frame
    from models.spec import load_spec
    from workers.cli_errors import require_kafka
    from workers.malformed import malformed_corpus
    from workers.producer import EventProducer, events_from_frame, pace
    from workers.settings import ProducerSettings

    settings = ProducerSettings()
    events_topic = settings.topics.events
    if flow_name is not None:
        from decisioning.flow import load_flow

        flow = load_flow(flow_name)
        spec_name = spec_name or flow.spec
        events_topic = flow.topics.get("events", events_topic)
    spec = load_spec(spec_name or "credit_data")
    df = load_frame(spec, source).iloc[skip:]
    require_kafka(settings.kafka.bootstrap_servers)
    if limit is not None:
        df = df.iloc[:limit]
    rng = random.Random(seed)
    bad = malformed_corpus()
    total = len(df) * repeat
    counts = {"valid": 0, "malformed": 0}
    t0 = time.perf_counter()
    options = settings.kafka.client_options()  # SASL / TLS settings included
    with EventProducer(
        options.pop("bootstrap_servers"),
        topic=topic or events_topic,
        linger_ms=settings.linger_ms,
        **options,
    ) as producer:
        clock = pace(rate)
        bar = tqdm(total=total, unit="ev", disable=not sys.stderr.isatty() and "CI" in os.environ)
        for r in range(repeat):
            rows = events_from_frame(df, spec.feature_names, spec.entity_key.column)
            for entity_id, features in rows:
                next(clock)
                producer.send(
                    entity_id,
                    features,
                    event_id=f"{id_prefix}{entity_id}-r{r}",
                    producer="decisionflow-produce",
                )
                counts["valid"] += 1
                if malformed and rng.random() < malformed:
                    _, raw = bad[rng.randrange(len(bad))]
                    producer.send_raw(entity_id, raw)
                    counts["malformed"] += 1
                bar.update(1)
        bar.close()
    secs = time.perf_counter() - t0
    click.echo(
        f"produced {counts['valid']} events + {counts['malformed']} malformed "
        f"in {secs:.1f}s ({counts['valid'] / max(secs, 1e-9):,.0f} ev/s)"
    )


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--name", default="w1", show_default=True, help="Worker node name (name@host).")
@click.option(
    "--queues",
    default="cpu",
    show_default=True,
    help="Celery queues for batch jobs (score_file), comma-separated; e.g. gpu on a GPU host.",
)
@click.option(
    "--decide/--no-decide",
    default=True,
    show_default=True,
    help="Run the Kafka decision loop (--no-decide: batch jobs only).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(name: str, queues: str, decide: bool, celery_args: tuple[str, ...]) -> None:
    """Start a decision worker: Celery, pool solo, the Kafka decision loop in its bootstep.

    The one way to start a worker: demo, tests, benchmarks, the Dockerfile, compose and the
    Kubernetes StatefulSet all run this command. Extra arguments go to ``celery worker``.
    """
    from workers.celery_app import app

    app.worker_main(celery_worker_args(name, queues, decide=decide, extra=celery_args))


def celery_worker_args(
    name: str, queues: str, *, decide: bool = True, extra: Sequence[str] = ()
) -> list[str]:
    """``celery worker`` arguments of a decision worker named ``name@<host>`` on ``queues``.

    Pool solo (the model lives in this process), no gossip or mingle (nothing here uses them;
    they slow start-up). Task events are on in the app's configuration (Flower shows tasks).
    """
    args = [
        "worker",
        "--pool=solo",
        "-n",
        name if "@" in name else f"{name}@%h",
        "-Q",
        queues,
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]
    return [*args, *(["--decide"] if decide else []), *extra]


def register(group: click.Group) -> None:
    """Add the streaming commands to the CLI group."""
    group.add_command(produce)
    group.add_command(worker)
