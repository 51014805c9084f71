"""decisionflow devtools: what developers run, not what production runs.

``make demo`` (:mod:`devtools.demo`), ``make airflow`` (:mod:`devtools.airflow_local`) and
starting workers as processes for the demo, tests and benchmarks (:mod:`devtools.launch`, which
runs the same ``decisionflow worker`` command as the deploy files). May import anything of
decisionflow; nothing imports it except tests and benchmarks. Not part of the wheel.
"""
