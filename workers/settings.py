"""Typed, frozen settings for each process type, read from ``DECISIONFLOW_*`` variables.

Values come from (highest first): environment variables, the file named by
``DECISIONFLOW_ENV_FILE``, then ``var/stack/stack.env`` written by ``infra/stack up``.
Nested fields use ``__``: ``DECISIONFLOW_KAFKA__SASL_USERNAME=...``; the flat
``DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS`` written by the stack is accepted too.
Secrets are ``SecretStr``: they never appear in ``repr`` or logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models import paths

if TYPE_CHECKING:
    from decisioning.flow import Flow
    from models.signing import RegistryKeys

__all__ = [
    "ApiOptions",
    "ApiSettings",
    "KafkaSettings",
    "ProducerSettings",
    "RegistrySettings",
    "SinkSettings",
    "WorkerSettings",
    "default_env_files",
    "registry_keys",
]


def default_env_files() -> tuple[Path, ...]:
    """Env files read in order (later wins): the stack's addresses, then a user's file."""
    files = [paths.stack_dir() / "stack.env"]
    if user := os.environ.get("DECISIONFLOW_ENV_FILE"):
        files.append(Path(user))
    return tuple(files)


class KafkaSettings(BaseModel):
    """Kafka client options shared by every process; security options pass through."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    client_id: str = "decisionflow"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (secrets revealed only here)."""
        opts: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                opts["sasl_plain_password"] = self.sasl_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if value := getattr(self, name):
                opts[name] = value
        if self.ssl_password is not None:
            opts["ssl_password"] = self.ssl_password.get_secret_value()
        return opts

    def confluent_options(self) -> dict[str, Any]:
        """The same options as librdkafka configuration, for confluent-kafka clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                conf["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                conf["sasl.password"] = self.sasl_password.get_secret_value()
        for ours, theirs in (
            ("ssl_cafile", "ssl.ca.location"),
            ("ssl_certfile", "ssl.certificate.location"),
            ("ssl_keyfile", "ssl.key.location"),
        ):
            if value := getattr(self, ours):
                conf[theirs] = value
        if self.ssl_password is not None:
            conf["ssl.key.password"] = self.ssl_password.get_secret_value()
        return conf


class Topics(BaseModel):
    """Topic names (a deployment may prefix or rename them)."""

    model_config = ConfigDict(frozen=True)

    events: str = "events"
    decisions: str = "decisions"
    shadow: str = "decisions.shadow"
    dlq: str = "events.dlq"
    outcomes: str = "outcomes"
    # where an event whose event_id was already decided is recorded (None: metric only)
    duplicates: str | None = "decisions.duplicates"

    def env(self) -> dict[str, str]:
        """These names as ``DECISIONFLOW_TOPICS__*`` environment variables (for child
        processes)."""
        return {f"DECISIONFLOW_TOPICS__{k.upper()}": v for k, v in self.model_dump().items() if v}

    def names(self) -> list[str]:
        """Every topic named here."""
        return [v for v in self.model_dump().values() if v]


class RegistrySettings(BaseModel):
    """The registry's Ed25519 keys (PEM file paths; see models.signing).

    ``signing_key`` (private) belongs only on the training host (CLI, Airflow); workers set
    only ``verify_key`` (public). With neither set, a dev key pair under the home is used.
    """

    model_config = ConfigDict(frozen=True)

    signing_key: Path | None = None
    verify_key: Path | None = None

    def keys(self) -> RegistryKeys:
        """The keys for :class:`models.registry.ModelRegistry` (loaded only when used)."""
        from models.signing import RegistryKeys

        return RegistryKeys.from_paths(self.signing_key, self.verify_key)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DECISIONFLOW_",
        env_nested_delimiter="__",
        env_file=default_env_files(),
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: Topics = Field(default_factory=Topics)
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS"),
        exclude=True,
    )
    # the Kafka client library: confluent-kafka (default, see docs/benchmarks.md) or kafka-python
    kafka_client: Literal["confluent", "kafka-python"] = "confluent"
    registry_url: str = Field(default_factory=paths.registry_url)
    # DECISIONFLOW_REGISTRY__SIGNING_KEY / DECISIONFLOW_REGISTRY__VERIFY_KEY
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    model_name: str = "credit_data"
    log_level: str = "INFO"
    # The decision flows of the deployment (decisioning/flow.py: shipped names or YAML paths),
    # DECISIONFLOW_FLOWS='["credit_data", "mortgage"]' or "credit_data,mortgage": a worker
    # runs one decision loop per flow (its own model, policy, topics, consumer group and
    # transactional ids, see WorkerSettings.for_flow); the sink lands every flow's topics.
    # Empty: the one flow of model_name / policy / topics, as before flows.
    flows: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("flows", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def flow_topics(self) -> dict[str, Topics]:
        """The topics of each listed flow (``{model_name: topics}`` when none is listed)."""
        if not self.flows:
            return {self.model_name: self.topics}
        from decisioning.flow import load_flow

        flows = [load_flow(name) for name in self.flows]
        return {flow.name: self.topics_of(flow) for flow in flows}

    def topics_of(self, flow: Flow) -> Topics:
        """The deployment's topic names with ``flow``'s own in their place."""
        return self.topics.model_copy(update={str(k): v for k, v in flow.topics.items()})

    def model_post_init(self, __context: Any) -> None:
        # The stack writes a flat DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS; fold it in.
        if self.kafka_bootstrap_servers:
            kafka = self.kafka.model_copy(
                update={"bootstrap_servers": self.kafka_bootstrap_servers}
            )
            object.__setattr__(self, "kafka", kafka)


class WorkerSettings(_Base):
    """A Celery decision worker: consumer, batcher, scoring, delivery."""

    redis_url: str = "redis://127.0.0.1:16379/0"
    group_id: str = Field(default="decisionflow", min_length=1)
    policy: str = "credit_v1"
    # the flow one loop serves (set by for_flow; metrics carry it as their `flow` label)
    flow: str | None = None
    challenger_policy: str | None = None
    challenger_model: str | None = None  # registry alias or version, e.g. "challenger"
    challenger_share: float = Field(default=0.0, ge=0, le=1)
    shadow_share: float = Field(default=0.0, ge=0, le=1)
    max_batch_size: int = Field(default=500, ge=1, le=100_000)
    max_wait_ms: int = Field(default=50, ge=0, le=60_000)
    max_message_bytes: int = Field(default=64 * 1024, ge=256)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    # a slower model call gets the policy's fallback decision (batches take milliseconds)
    score_timeout_s: float = Field(default=5.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # What computes the scores (docs/runtimes.md): native = the registered
    # torch / scikit-learn model (alias torch); onnx / int8 = its ONNX Runtime variants (CPU);
    # fp16 / bf16 = torch casts on CUDA; auto = the fastest variant that passed its parity
    # check on the holdout, else native. A variant that is missing or not servable falls back
    # to native. Reason codes always come from the native model.
    runtime: Literal["auto", "native", "torch", "onnx", "int8", "fp16", "bf16"] = "native"
    # CPU threads per worker of the model's native libraries: torch intra-op, and the OpenMP
    # and BLAS pools of scikit-learn and numpy on the scoring thread (0 = each library's
    # default, one per core). One thread per worker process is the robust choice: on a shared
    # host, spinning OpenMP threads slowed integrated gradients 27x (docs/benchmarks.md) and
    # a gradient-boosting batch of 40 rows 3x.
    torch_threads: int = Field(default=1, ge=0, le=256)
    reload_poll_s: float = Field(default=5.0, gt=0)
    metrics_port: int = Field(default=0, ge=0, le=65535)  # 0 = do not serve
    # loopback by default; 0.0.0.0 in containers so Prometheus and probes can reach it
    metrics_host: str = "127.0.0.1"
    transactional_id_prefix: str = Field(default="decisionflow", min_length=1)
    # a rebalance still unfinished after this long rebuilds the worker's Kafka clients
    rejoin_timeout_s: float = Field(default=60.0, gt=0)
    # An open transaction of a killed worker blocks read_committed readers of its partitions
    # until it times out (or the worker is back under its name): the recovery time after a
    # kill -9. It must outlast the slowest batch (see the validator below).
    transaction_timeout_ms: int = Field(default=7_000, ge=1_000)
    # A transaction may span several model batches: it commits once it holds this many events
    # or is transaction_max_ms old, whichever comes first (0: one transaction per batch).
    # Bigger transactions cost fewer commit round trips per event and add up to
    # transaction_max_ms of latency. The benchmark's sweep (docs/benchmarks.md) measured one
    # worker at 15.7k ev/s with a transaction per 500-event batch and 28.6k ev/s with 5,000;
    # two later sweeps found transactions of 2,000 as fast in a burst (20.7k vs 17.6k ev/s;
    # 27.8k vs 27.2k) and with a lower p99 at half load (126 vs 311 ms; 77 vs 99 ms), and
    # real 1- and 2-worker bursts were alike with either size: hence 2,000.
    transaction_max_events: int = Field(default=2000, ge=0)
    transaction_max_ms: int = Field(default=100, ge=1, le=60_000)
    # ... but a transaction also commits as soon as the loop has caught up (its last poll
    # returned fewer records than it asked for): waiting for a bigger one then only adds
    # latency. Under a backlog polls come back full and transactions grow to the bounds above.
    commit_when_caught_up: bool = True
    # Static group membership (group.instance.id = the worker's name): a worker restarted
    # within session_timeout_ms takes its partitions back without a rebalance, and a dead
    # worker's partitions move after session_timeout_ms (Kafka's default is 45 s).
    static_membership: bool = True
    session_timeout_ms: int = Field(default=6_000, ge=6_000, le=1_800_000)
    heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    # Incremental cooperative rebalancing (cooperative-sticky, KIP-429) on the confluent client:
    # a worker joining or leaving moves only the partitions that change owner; the others keep
    # being decided through the rebalance. kafka-python workers rebalance eagerly (all
    # partitions revoked, then reassigned). All workers of a group must agree: switching a
    # running group takes a full stop.
    cooperative_rebalancing: bool = True
    # A cooperative group is checked this often (0: never) for partitions no member owns, as a
    # static member killed between the two rounds of a rebalance leaves them; when the same
    # ones stay unowned over two checks, the worker forces a rebalance (workers/group_watch.py).
    group_check_s: float = Field(default=10.0, ge=0)
    # Pipelined commits (confluent client): a transaction commits on a thread of its own while
    # the loop decides the next batch, which opens the next transaction once the commit is
    # through. Off: the loop waits for each commit (flush + offsets + commit round trips).
    pipeline_commits: bool = True
    # An event_id seen again within this window gets no second decision (0: no check). The
    # claims live in Redis (redis_url); see workers/idempotency.py for the guarantee.
    dedupe_window_s: float = Field(default=86_400.0, ge=0)

    @property
    def flow_name(self) -> str:
        """The flow this loop serves: its flow, else its model (pre-flow deployments)."""
        return self.flow or self.model_name

    def for_flow(self, flow: Flow) -> WorkerSettings:
        """These settings narrowed to one flow: its model, policy (the promoted version when
        ``decisionflow policy promote`` made one) and topics.

        A flow with its own events topic gets its own consumer group and transactional ids
        (``<group_id>.<flow>``); the flow on the deployment's default topics keeps the
        deployment's, so a deployment that lists its one flow keeps its offsets and claims.
        """
        from pipelines.policy_optimise import flow_policy_ref

        topics = self.topics_of(flow)
        own = topics.events != self.topics.events
        return self.model_copy(
            update={
                "flow": flow.name,
                "flows": [],
                "model_name": flow.model_name,
                "policy": flow_policy_ref(flow),  # its promoted version, if one was
                "topics": topics,
                "group_id": f"{self.group_id}.{flow.name}" if own else self.group_id,
                "transactional_id_prefix": (
                    f"{self.transactional_id_prefix}.{flow.name}"
                    if own
                    else self.transactional_id_prefix
                ),
                # the default flow's challenger settings are not another flow's
                "challenger_model": self.challenger_model if not own else None,
                "challenger_policy": self.challenger_policy if not own else None,
            }
        )

    def flow_settings(self) -> list[WorkerSettings]:
        """One :meth:`for_flow` per listed flow (``[self]`` when none is listed).

        Raises ``ValueError`` when two flows would read the same events topic (each event
        would be decided by both).
        """
        if not self.flows:
            return [self]
        from decisioning.flow import load_flow

        out = [self.for_flow(load_flow(name)) for name in self.flows]
        seen: dict[str, str] = {}
        for one in out:
            other = seen.setdefault(one.topics.events, one.flow_name)
            if other != one.flow_name:
                raise ValueError(
                    f"flows {other!r} and {one.flow_name!r} both read topic "
                    f"{one.topics.events!r}: give one of them its own topics"
                )
        return out

    @model_validator(mode="after")
    def _slow_model_cannot_stall_the_group(self) -> WorkerSettings:
        # a batch may take up to the scoring timeout; the group must not evict us meanwhile
        if self.score_timeout_s * 1000 * 2 > self.max_poll_interval_ms:
            raise ValueError(
                f"score_timeout_s ({self.score_timeout_s}) must be under half of "
                f"max_poll_interval_ms ({self.max_poll_interval_ms}) to avoid rebalance storms"
            )
        slowest_ms = self.score_timeout_s * 1000 + self.transaction_max_ms + 1000
        if self.transaction_timeout_ms < slowest_ms:
            raise ValueError(
                f"transaction_timeout_ms ({self.transaction_timeout_ms}) must cover a batch at "
                f"the scoring timeout plus transaction_max_ms and a second (>= {slowest_ms:.0f})"
            )
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be at most a third of session_timeout_ms")
        return self


class ProducerSettings(_Base):
    """`decisionflow produce`: streams dataset rows as events."""

    rate: float = Field(default=0.0, ge=0)  # events/s; 0 = flat out
    linger_ms: int = Field(default=5, ge=0)


class SinkSettings(_Base):
    """The decision/outcome sink that lands Kafka records in the store."""

    database_url: SecretStr = Field(default_factory=lambda: SecretStr(paths.sqlite_store_url()))
    # not `group_id`: DECISIONFLOW_GROUP_ID names the decision workers' group
    sink_group_id: str = Field(default="decisionflow-sink", min_length=1)
    batch_size: int = Field(default=1000, ge=1)


class ApiOptions(BaseModel):
    """The HTTP decision API's own options (``DECISIONFLOW_API__*``, see docs/api.md)."""

    model_config = ConfigDict(frozen=True)

    # API keys, name -> key: DECISIONFLOW_API__KEYS='{"team-a": "..."}' (a JSON list of keys
    # is accepted too: named key1, key2...). Names label metrics and rate limits; keys are
    # never logged. No key at all: `decisionflow serve` refuses to start without
    # --insecure-no-auth.
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=18000, ge=1, le=65535)
    wait_s: float = Field(default=2.0, ge=0, le=600)  # POST waits this long, then 202
    max_wait_s: float = Field(default=30.0, ge=0, le=600)  # cap of a request's ?wait=
    publish_timeout_s: float = Field(default=10.0, gt=0)  # broker ack of the event (else 503)
    rate_per_s: float = Field(default=100.0, ge=0)  # token bucket per key; 0 = no limit
    burst: int = Field(default=200, ge=1)
    recent_decisions: int = Field(default=50_000, ge=1)  # in-memory index of decisions
    max_waiters: int = Field(default=10_000, ge=1)  # requests waiting at once (else 503)
    # spec the API checks features against, as the workers do: "champion" (the registry
    # champion's, re-read when the alias moves), a packaged spec name or YAML path, "none"
    feature_spec: str = "champion"
    spec_refresh_s: float = Field(default=30.0, gt=0)
    ready_max_lag: int = Field(default=1000, ge=0)  # /readyz: decisions not yet read
    linger_ms: int = Field(default=1, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _keys_as_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("keys"), list | tuple):
            data = {**data, "keys": {f"key{i + 1}": k for i, k in enumerate(data["keys"])}}
        return data

    @model_validator(mode="after")
    def _keys_not_empty(self) -> ApiOptions:
        if any(not key.get_secret_value() for key in self.keys.values()):
            raise ValueError("api.keys: an API key must not be empty")
        return self


class ApiSettings(_Base):
    """`decisionflow serve`: the request/reply HTTP decision API beside the stream."""

    api: ApiOptions = Field(default_factory=ApiOptions)
    # the same limit as the workers' (DECISIONFLOW_MAX_MESSAGE_BYTES): larger bodies get 413
    max_message_bytes: int = Field(default=64 * 1024, ge=256)
    # optional: GET /v1/decisions/{id} and duplicate POSTs also look decisions up in the store
    database_url: SecretStr | None = None

    @model_validator(mode="after")
    def _empty_database_url_is_none(self) -> ApiSettings:
        if self.database_url is not None and not self.database_url.get_secret_value():
            object.__setattr__(self, "database_url", None)
        return self


def registry_keys() -> RegistryKeys:
    """The registry keys of ``DECISIONFLOW_REGISTRY__*`` (environment, then the env files), for
    commands that read no process settings (``decisionflow models ...``)."""
    return _Base().registry.keys()
