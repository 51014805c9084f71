"""The request/reply HTTP decision API beside the stream (``decisionflow serve``).

``POST /v1/decisions`` validates an event against the workers' contract, publishes it to the
events topic and waits, bounded, for its decision on the decisions topic; the API never decides
itself. Modules: :mod:`~workers.api.app` (routes), :mod:`~workers.api.auth` (keys, rate
limits), :mod:`~workers.api.waiters` (recent decisions and waiting requests),
:mod:`~workers.api.bridge` (the Kafka producer and the decisions reader),
:mod:`~workers.api.events` (validation), :mod:`~workers.api.store` (the store fallback),
:mod:`~workers.api.metrics` and :mod:`~workers.api.doubles` (in-package test doubles).
See docs/api.md.
"""
