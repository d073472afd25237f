"""The risk model: matured labels, time split, calibration, thresholds, reasons, the promotion
gate (a worse challenger is never promoted) and the MLflow registry flow."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.risk.config import load_policy
from ml.risk.evaluate import compare_with_rules, promotion_gate
from ml.risk.features import build_features
from ml.risk.model import RiskModel, Thresholds, matured_labels, time_split, train
from ml.risk.rules import RulesError, load_rules
from ordertower.lake import NO_AUTO_EXTENSIONS
from tests.risk_factory import make_facts

POLICY = load_policy(
    maturity_days=5, num_boost_round=300, early_stopping_rounds=30, min_test_frauds=5
)


@pytest.fixture(scope="module")
def labelled() -> pd.DataFrame:
    facts, verdicts, _ = make_facts(n=6000, days=60, seed=11)
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.register("facts", facts)
    con.register("verdicts", verdicts)
    feats = build_features(con, "facts", "verdicts")
    cutoff = facts["ordered_at"].max()
    labels = matured_labels(feats, verdicts, cutoff, POLICY.maturity_days)
    return feats.merge(labels[["order_id", "label"]], on="order_id")


@pytest.fixture(scope="module")
def trained(labelled):
    return train(labelled, POLICY)


def test_matured_labels_use_only_what_was_known_at_the_cutoff():
    orders = pd.DataFrame(
        {
            "order_id": ["old_fraud", "old_late_label", "old_good", "young_fraud"],
            "ordered_at": pd.to_datetime(
                ["2026-01-01", "2026-01-02", "2026-01-03", "2026-03-30"], utc=True
            ),
        }
    )
    verdicts = pd.DataFrame(
        {
            "order_id": ["old_fraud", "old_late_label", "young_fraud"],
            "is_fraud": [True, True, True],
            "fraud_known_at": pd.to_datetime(["2026-01-20", "2026-04-10", "2026-03-31"], utc=True),
        }
    )
    out = matured_labels(orders, verdicts, pd.Timestamp("2026-04-01", tz="UTC"), 60).set_index(
        "order_id"
    )
    assert "young_fraud" not in out.index  # not matured: its label may still come
    assert out.loc["old_fraud", "label"] == 1
    assert out.loc["old_late_label", "label"] == 0  # reported after the cut-off: unknown then
    assert out.loc["old_good", "label"] == 0


def test_split_is_by_time(labelled):
    splits = time_split(labelled["ordered_at"], (0.6, 0.2, 0.2))
    assert [s.name for s in splits] == ["train", "validation", "test"]
    assert splits[0].end <= splits[1].start <= splits[1].end <= splits[2].start
    assert sum(len(s.rows) for s in splits) == len(labelled)


def test_model_is_calibrated_and_beats_the_rules(trained):
    test = trained.test
    assert trained.model.booster.best_iteration < POLICY.num_boost_round  # early stopping
    assert abs(test["prob"].mean() - test["label"].mean()) < 0.05
    comparison = compare_with_rules(trained.model, load_rules(), test)
    assert comparison.model["roc_auc"] > comparison.rules["roc_auc"]
    assert comparison.model["pr_auc"] > comparison.rules["pr_auc"]


def test_thresholds_follow_capacity_and_costs():
    d = load_policy().decision
    rng = np.random.default_rng(0)
    prob = rng.beta(0.5, 20, 10000)
    value = rng.lognormal(4, 0.8, 10000)
    th = Thresholds.fit(prob, value, d)
    decisions = th.decide(prob, value)
    assert (decisions == "review").mean() <= d.review_capacity + 1e-9
    assert th.review_min_expected_loss >= d.review_cost
    # reject exactly where declining costs less than the expected fraud loss
    big = th.decide(np.array([0.9, 0.01]), np.array([500.0, 500.0]))
    assert list(big) == ["reject", "approve"] or big[1] == "review"


def test_scores_have_three_readable_reasons_and_survive_a_round_trip(trained, tmp_path):
    sample = trained.test.head(300)
    scored = trained.model.score(sample)
    assert set(scored["decision"]) <= {"approve", "review", "reject"}
    for k in (1, 2, 3):
        assert scored[f"reason_{k}"].str.len().gt(5).all()
    again = RiskModel.load(trained.model.save(tmp_path / "m")).score(sample)
    np.testing.assert_allclose(scored["risk_score"], again["risk_score"])
    assert (scored["reason_1"] == again["reason_1"]).all()


def test_a_worse_challenger_is_not_promoted(labelled, trained):
    shuffled = labelled.copy()
    shuffled["label"] = np.random.default_rng(5).permutation(shuffled["label"].to_numpy())
    worse = train(shuffled, POLICY).model
    test = trained.test
    assert promotion_gate(trained.model, None, test, POLICY).promote  # first model
    kept = promotion_gate(worse, trained.model, test, POLICY)
    assert not kept.promote and "does not beat" in kept.reason
    assert promotion_gate(trained.model, worse, test, POLICY).promote
    # a tie is not enough: the margin must be beaten
    assert not promotion_gate(trained.model, trained.model, test, POLICY).promote
    strict = load_policy(min_test_frauds=10**6)
    assert not promotion_gate(trained.model, worse, test, strict).promote


def test_rules_reject_unknown_features_and_code(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("hold_at: 1\nrules:\n  - name: typo\n    when: order_totl > 5\n")
    with pytest.raises(RulesError, match="not a feature"):
        load_rules(bad)
    bad.write_text("hold_at: 1\nrules:\n  - name: evil\n    when: __import__('os').system('x')\n")
    with pytest.raises(RulesError, match="not allowed"):
        load_rules(bad)


def test_registry_records_the_gate_and_moves_champion_only_on_promotion(trained, lake_home):
    from ml.risk import registry

    def register() -> registry.Candidate:
        return registry.log_candidate(
            trained.model, {"p": 1}, {"m": 1.0}, {}, {}, ("a", "b"), "2026-01-01", 7
        )

    first = register()
    registry.record_decision(first, {"promote": True, "reason": "first"}, None)
    assert registry.alias_version("champion") == first.version
    second = register()
    assert registry.alias_version("challenger") == second.version
    registry.record_decision(second, {"promote": False, "reason": "worse"}, None)
    assert registry.alias_version("champion") == first.version
    tags = registry.client().get_model_version("order_risk", second.version).tags
    assert tags["promotion_decision"] == "rejected" and tags["lake_snapshot_id"] == "7"
    version, model = registry.champion()
    assert version == first.version
    np.testing.assert_allclose(
        model.predict_proba(trained.test.head(50)),
        trained.model.predict_proba(trained.test.head(50)),
    )


def _report(beats: bool, frauds: int = 50) -> dict:
    metrics = {"roc_auc": 0.9, "pr_auc": 0.5, "recall_at_1pct_fpr": 0.5, "accuracy": 0.97}
    return {
        "model_vs_rules": {
            "frauds": frauds,
            "model": metrics,
            "rules": metrics,
            "model_beats_rules": {k: beats for k in metrics},
        }
    }


def test_the_blocking_check_stops_a_model_that_does_not_beat_the_rules():
    import dagster as dg

    from pipelines.defs.risk.assets import risk_evaluation_is_sound

    assert all(spec.blocking for spec in risk_evaluation_is_sound.check_specs)
    context = dg.build_asset_check_context()
    assert risk_evaluation_is_sound(context, _report(True)).passed
    failed = risk_evaluation_is_sound(context, _report(False))
    assert not failed.passed and "does not beat the rules" in failed.metadata["problems"].text
    assert not risk_evaluation_is_sound(context, _report(True, frauds=3)).passed
