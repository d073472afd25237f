"""Evaluation helpers: operating points with ties, equal-recall comparison, PSI, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml import evaluation as ev


def test_auc_extremes_and_one_class_is_an_error():
    y = [0, 0, 1, 1]
    assert ev.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert ev.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        ev.roc_auc([0, 0], [0.1, 0.2])


def test_operating_points_treat_ties_as_one_group():
    # 2 frauds, 8 legitimate; a tie at 0.5 holds one fraud and two legitimate orders
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    # threshold 0.9: recall 0.5 at fpr 0; threshold 0.5: recall 1.0 at fpr 2/8
    assert ev.recall_at_fpr(y, s, 0.1) == 0.5
    assert ev.recall_at_fpr(y, s, 0.25) == 1.0
    assert ev.fpr_at_recall(y, s, 1.0) == 0.25
    assert ev.threshold_for_recall(y, s, 0.5) == 0.9


def test_compare_at_equal_recall():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    rules_held = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], bool)  # recall 1, fpr 4/8
    model = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # recall 1 at fpr 0
    out = ev.compare_at_equal_recall(y, model, rules_held)
    assert out["recall"] == 1.0 and out["b_fpr"] == 0.5 and out["a_fpr"] == 0.0
    assert out["a_fewer_legit_intercepted"] == 1.0
    conf = ev.confusion_at(y, rules_held)
    assert (conf["tp"], conf["fp"], conf["accuracy"]) == (2, 4, 0.6)


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = ev.psi_reference(rng.normal(0, 1, 20000))
    ref = json.loads(json.dumps(ref))  # stored with the model as JSON
    assert ev.psi(ref, rng.normal(0, 1, 20000)) < 0.02
    assert ev.psi(ref, rng.normal(1.5, 1, 20000)) > 0.25
    assert ev.psi_level(0.05) == "stable" and ev.psi_level(0.3) == "shifted"
    with_missing = rng.normal(0, 1, 1000)
    with_missing[:500] = np.nan
    assert ev.psi(ref, with_missing) > 0.25  # missing values are a bin of their own


def test_plots_write_pngs(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.1
    s = np.where(y, rng.normal(1, 1, 500), rng.normal(0, 1, 500))
    p = 1 / (1 + np.exp(-s))
    paths = [
        ev.plot_roc(tmp_path / "roc.png", {"a": (y, s)}),
        ev.plot_pr(tmp_path / "pr.png", {"a": (y, s)}),
        ev.plot_calibration(tmp_path / "cal.png", y, p),
        ev.plot_shap_summary(
            tmp_path / "shap.png",
            rng.normal(0, 1, (500, 4)),
            rng.normal(0, 1, (500, 4)),
            list("abcd"),
        ),
    ]
    assert all(path.stat().st_size > 1000 for path in paths)
