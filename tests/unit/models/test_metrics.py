"""Metrics against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.metrics import Metrics, compute_metrics

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2, 0.6, 0.1])


def test_threshold_metrics_by_hand() -> None:
    m = compute_metrics(Y, P, threshold=0.5)
    # predictions >= 0.5: 0.9 0.8 0.7 0.6 -> tp=3 (0.9,0.7,0.6) fp=1 (0.8); fn=1 (0.4); tn=3
    c = m.at_threshold.confusion
    assert (c.tn, c.fp, c.fn, c.tp) == (3, 1, 1, 3)
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.precision == pytest.approx(3 / 4)
    assert m.recall == pytest.approx(3 / 4)
    assert m.f1 == pytest.approx(0.75)
    strict = compute_metrics(Y, P, threshold=0.75)
    # >= 0.75: 0.9 (tp), 0.8 (fp) -> precision 1/2, recall 1/4, f1 = 2/(2+1+3)
    assert strict.precision == pytest.approx(0.5)
    assert strict.recall == pytest.approx(0.25)
    assert strict.f1 == pytest.approx(2 / 6)
    assert strict.at_half == m.at_half


def test_probabilistic_metrics_by_hand() -> None:
    m = compute_metrics(Y, P)
    # ROC-AUC: pairs (pos, neg) ranked correctly / 16.
    # positives 0.9,0.7,0.6,0.4 vs negatives 0.8,0.3,0.2,0.1 -> 4 + 3 + 3 + 3 = 13
    assert m.roc_auc == pytest.approx(13 / 16)
    # average precision: precision at each positive in ranked order
    # ranks: 0.9(+) p=1/1, 0.8(-), 0.7(+) p=2/3, 0.6(+) p=3/4, 0.4(+) p=4/5
    assert m.pr_auc == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 5) / 4)
    brier = np.mean((P - Y) ** 2)
    assert m.brier == pytest.approx(brier)
    ll = -np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P))
    assert m.log_loss == pytest.approx(ll)
    assert m.n == 8 and m.positive_rate == 0.5


def test_calibration_and_json_round_trip() -> None:
    m = compute_metrics(Y, P, n_bins=2)
    # bin [0,0.5): probs .4 .3 .2 .1 -> 1 positive of 4; bin [0.5,1]: .9 .8 .7 .6 -> 3 of 4
    assert m.calibration["prob_true"] == pytest.approx([0.25, 0.75])
    assert m.calibration["prob_pred"] == pytest.approx([0.25, 0.75])
    data = json.loads(json.dumps(m.to_dict()))
    assert Metrics.from_dict(data) == m
    assert set(m.headline()) >= {"roc_auc", "pr_auc", "f1", "brier", "log_loss", "f1@0.5"}


def test_single_class_gives_nan_ranking_metrics_and_null_json() -> None:
    m = compute_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.6]))
    assert math.isnan(m.roc_auc) and math.isnan(m.pr_auc)
    assert m.to_dict()["roc_auc"] is None
    assert m.precision == 0.0 and m.recall == 0.0
    with pytest.raises(ValueError, match="equal length"):
        compute_metrics(Y, P[:-1])
