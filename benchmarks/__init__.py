"""Throughput / latency harness for decisionflow (a benchmark, never a timed test).

Run it with ``make bench`` (``python -m benchmarks.run``); see ``docs/benchmarks.md``.
"""
