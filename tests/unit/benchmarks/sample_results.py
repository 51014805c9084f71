"""A hand-made benchmark result shared by the report and verdict tests."""

from __future__ import annotations

from typing import Any

__all__ = ["passing"]


def passing() -> dict[str, Any]:
    """A full-run result that meets every target."""
    return {
        "meta": {"date": "2026-11-30", "machine": "test box", "command": "x", "mode": "full"},
        "default_client": "confluent",
        "ceiling": {
            "confluent": {"rate": 80_000.0, "client": "confluent", "events": 10},
            "kafka-python": {"rate": 14_000.0, "client": "kafka-python", "events": 10},
        },
        "workers": {
            "confluent_1": {"rate": 60_000.0, "client": "confluent", "workers": 1, "events": 10},
            "confluent_2": {"rate": 45_000.0, "client": "confluent", "workers": 2, "events": 10},
            "kafka-python_1": {"rate": 10_500.0, "client": "kafka-python", "events": 10},
            "kafka-python_2": {"rate": 12_000.0, "client": "kafka-python", "events": 10},
        },
        "latency": {
            "client": "confluent",
            "max_rate": 60_000.0,
            "max_wait_ms": 50,
            "points": [
                {"load_pct": pct, "target_rate": 600.0 * pct, "p50": 30.0, "p99": 80.0}
                for pct in (10, 25, 50, 75)
            ],
        },
        "scoring": {
            "device": {"device": "cpu"},
            "family": "torch_mlp",
            "reasons": "gradient_x_input, review+decline only",
            "rounds": 3,
            "rows": [
                {"batch": 1, "seconds": {"engine total: process + records()": 0.001}},
                {
                    "batch": 500,
                    "seconds": {"engine total: process + records()": 0.006},
                },
            ],
        },
        "soak": {
            "client": "confluent",
            "seconds": 600.0,
            "achieved_rate": 30_000.0,
            "samples": [
                {"t_s": 0.0, "rss_mib": [800.0]},
                {"t_s": 30.0, "rss_mib": [840.0]},
                {"t_s": 600.0, "rss_mib": [850.0]},
            ],
        },
    }
