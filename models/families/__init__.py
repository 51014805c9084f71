"""Concrete model families: ``torch_mlp``, ``logreg`` and ``hgb`` (see :mod:`models.family`)."""
