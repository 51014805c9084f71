"""decisionflow pipelines: the one retrain pipeline, run by ``decisionflow models train`` and the
retrain DAG alike.

- :mod:`pipelines.retrain`: the pure steps and the rules (data checks, the split, the best
  candidate, the gate, what gets registered).
- :mod:`pipelines.workdir`: the same steps on a run's work dir (one function per DAG task) and
  :func:`~pipelines.workdir.run_retrain`, which runs them all in order (the CLI).
- :mod:`pipelines.report`: the run's analyst report.

May import ``models``, ``storage`` (the labelled rows of the store) and ``analytics`` (the
report); never ``workers`` or the DAGs.
"""

from pipelines.retrain import (
    DataValidationError,
    alias_for,
    check_training_data,
    evaluate_registered,
    fit_candidate,
    gate_verdict,
    holdout_metrics,
    pick_best,
    split_training_data,
)
from pipelines.workdir import run_retrain

__all__ = [
    "DataValidationError",
    "alias_for",
    "check_training_data",
    "evaluate_registered",
    "fit_candidate",
    "gate_verdict",
    "holdout_metrics",
    "pick_best",
    "run_retrain",
    "split_training_data",
]
