"""The risk model: matured labels, time split, calibration (Brier score and reliability against
the rules), thresholds and decisions, SHAP reasons, the promotion gate (a worse challenger is
never promoted) and the MLflow registry flow."""

from __future__ import annotations

import dataclasses

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from ml.risk.config import load_policy
from ml.risk.evaluate import compare_with_rules, promotion_gate
from ml.risk.features import build_features, feature_names
from ml.risk.model import (
    NO_OTHER_REASON,
    NO_REASON,
    RiskModel,
    Thresholds,
    matured_labels,
    reason_text,
    time_split,
    train,
)
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


def test_model_beats_the_rules(trained):
    test = trained.test
    assert trained.model.booster.best_iteration < POLICY.num_boost_round  # early stopping
    comparison = compare_with_rules(trained.model, load_rules(), test)
    assert comparison.model["roc_auc"] > comparison.rules["roc_auc"]
    assert comparison.model["pr_auc"] > comparison.rules["pr_auc"]


# ------------------------------------------------------------------------------ calibration

#: share of the disguised fraud orders relabelled legitimate: the disguised segment's true fraud
#: rate is then about 35 %, and no feature can tell its frauds from its good orders
DISGUISED_LEGIT = 0.65


@pytest.fixture(scope="module")
def uncertain():
    """A world where the right answer is a probability, not 0 or 1.

    ``make_facts`` separates fraud perfectly (rings, foreign IPs, big baskets), so any score is
    "calibrated". Here 60 % of the frauds are disguised: every fact copied from a random good
    order except the timestamps and a new customer, device and card; then 65 % of the disguised
    orders become good ones. New customers on a new device are then fraud about 35 % of the
    time, and the calibrated score must say so. Labels are the truth (every verdict known), so
    calibration is measured against what really happened.
    """
    n, seed = 6000, 11
    facts, verdicts, fraud = make_facts(n=n, days=60, seed=seed)
    rng = np.random.default_rng(seed + 1)
    disguised = fraud & (rng.random(n) < 0.6)
    donor = rng.choice(np.flatnonzero(~fraud), n)
    for col in facts.columns:
        if col not in ("order_id", "ordered_at", "partition_key", "signed_up_at", "customer_key"):
            facts.loc[disguised, col] = facts[col].to_numpy()[donor][disguised]
    facts.loc[disguised, "device_key"] = [f"DD{i}" for i in np.flatnonzero(disguised)]
    facts.loc[disguised, "card_key"] = [f"DK{i}" for i in np.flatnonzero(disguised)]
    truth = fraud & ~(disguised & (rng.random(n) < DISGUISED_LEGIT))
    verdicts = verdicts[verdicts["order_id"].isin(set(facts["order_id"][truth]))]
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.register("facts", facts)
    con.register("verdicts", verdicts)
    feats = build_features(con, "facts", "verdicts")
    labels = pd.DataFrame({"order_id": facts["order_id"], "label": truth.astype(np.int8)})
    frame = feats.merge(labels, on="order_id", validate="one_to_one")
    policy = dataclasses.replace(POLICY, params={**POLICY.params, "num_threads": 1})
    result = train(frame, policy)
    validation = frame.iloc[result.splits[1].rows]
    return result, validation, set(facts["order_id"][disguised])


def _brier(prob: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((prob - y) ** 2))


def test_risk_score_is_calibrated_and_beats_the_rules_on_brier(uncertain):
    """On the held-out test period: the calibrated risk score has a lower Brier score than the
    rules' points mapped to a probability the same way (isotonic on the validation period), and
    its reliability curve follows the diagonal. Measured: Brier 0.0095 against the rules' 0.0132
    and the base rate's 0.0299; the disguised segment scored 0.42 for a fraud rate of 0.35."""
    from sklearn.isotonic import IsotonicRegression

    result, validation, disguised = uncertain
    test, rules = result.test, load_rules()
    y = test["label"].to_numpy(dtype=float)
    prob = test["prob"].to_numpy(dtype=float)
    assert 20 <= y.sum() < len(y) / 10  # the period holds enough fraud to measure

    to_prob = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
    to_prob.fit(rules.points(validation), validation["label"])
    rules_prob = to_prob.predict(rules.points(test))
    base_rate = np.full(len(y), validation["label"].mean())
    model, rules_brier, base = _brier(prob, y), _brier(rules_prob, y), _brier(base_rate, y)
    assert model < 0.9 * rules_brier, (model, rules_brier)
    assert model < 0.5 * base, (model, base)  # Brier skill over the base rate above 0.5

    # reliability curve: in each probability bin with enough orders, the mean score is within
    # three binomial standard errors (plus 0.05) of the fraud rate observed there
    bins = pd.cut(prob, [-0.01, 0.02, 0.1, 0.3, 0.6, 0.9, 1.0])
    curve = (
        pd.DataFrame({"p": prob, "y": y, "bin": bins})
        .groupby("bin", observed=True)
        .agg(n=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
    )
    assert (curve["n"] >= 15).sum() >= 3, curve  # not only "0" and "1": a real curve
    for row in curve[curve["n"] >= 15].itertuples():
        se = np.sqrt(max(row.predicted * (1 - row.predicted), 0.01) / row.n)
        assert abs(row.predicted - row.observed) <= 3 * se + 0.05, curve
    ece = float((curve["predicted"] - curve["observed"]).abs().mul(curve["n"]).sum() / len(y))
    assert ece < 0.02, curve
    # the ambiguous segment gets its fraud rate as its score (neither 0 nor 1)
    segment = test["order_id"].isin(disguised).to_numpy()
    assert segment.sum() >= 30
    assert 0.15 <= prob[segment].mean() <= 0.6
    assert abs(prob[segment].mean() - y[segment].mean()) <= 0.15


# -------------------------------------------------------------------------------- decisions


def test_thresholds_follow_capacity_and_costs():
    d = load_policy().decision
    rng = np.random.default_rng(0)
    prob = rng.beta(0.5, 20, 10000)
    value = rng.lognormal(4, 0.8, 10000)
    th = Thresholds.fit(prob, value, d)
    decisions = th.decide(prob, value)
    # the review queue takes exactly the capacity: the k orders with the highest expected loss
    # among those not rejected (no ties in continuous draws), and the bar pays for a review
    k = int(d.review_capacity * len(prob))
    assert (decisions == "review").sum() == k
    assert th.review_min_expected_loss >= d.review_cost
    loss = th.expected_loss(prob, value)
    not_rejected = decisions != "reject"
    assert loss[decisions == "review"].min() == th.review_min_expected_loss
    assert loss[not_rejected & (decisions == "approve")].max() < th.review_min_expected_loss


@pytest.mark.parametrize(
    ("prob", "value", "decision"),
    [
        # reject iff p * (v + 15) > (1 - p) * v * 0.35: at v = 500 the break-even is p = 0.2536
        (0.90, 500.0, "reject"),
        (0.26, 500.0, "reject"),
        (0.25, 500.0, "review"),  # expected loss 128.75 >= 10, declining would cost more
        (0.03, 500.0, "review"),  # expected loss 15.45 >= 10
        (0.01, 500.0, "approve"),  # expected loss 5.15 < 10
        (0.019, 500.0, "approve"),  # 9.785 < 10
        (0.02, 485.0, "review"),  # exactly 10.0: at the bar is reviewed
        (0.05, 20.0, "approve"),  # 1.75: a cheap order is not worth a review
        (0.60, 20.0, "reject"),  # 21.0 > 2.8
    ],
)
def test_each_decision_follows_the_documented_costs(prob, value, decision):
    """Each branch of the decision on fixed numbers (policy: fraud loss 100 % of the value +
    15 EUR, false decline 35 % of the value, review bar 10 EUR of expected loss)."""
    d = load_policy().decision
    assert (d.fraud_loss_rate, d.chargeback_fee, d.false_decline_cost_rate) == (1.0, 15.0, 0.35)
    th = Thresholds(review_min_expected_loss=10.0, decision=d)
    assert th.decide(np.array([prob]), np.array([value])).tolist() == [decision]


# ---------------------------------------------------------------------------------- reasons


def test_reasons_are_the_top_three_shap_contributions_in_order_and_distinct(trained):
    """Every reason is a feature whose SHAP contribution raised the score, the three largest in
    decreasing order, three different features; the contributions are LightGBM's own TreeSHAP
    (``pred_contrib``) computed here from a copy of the booster, and they add up to the raw
    score. An order with fewer than three raising features says so instead of naming one that
    did not raise it."""
    model, test = trained.model, trained.test
    scored = model.score(test)
    assert scored["order_id"].tolist() == test["order_id"].tolist()
    booster = lgb.Booster(model_str=model.booster.model_to_string())
    x = model.matrix(test)
    iteration = model.booster.best_iteration
    contrib = booster.predict(x, num_iteration=iteration, pred_contrib=True)
    raw = booster.predict(x, num_iteration=iteration, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)  # SHAP adds up
    shap = contrib[:, :-1]
    names = feature_names()
    column = {name: i for i, name in enumerate(names)}
    top = -np.sort(-shap, axis=1)[:, :3]  # the three largest contributions of each order
    raising = (shap > 0).sum(axis=1)
    values = test[names].reset_index(drop=True)
    for row in range(len(test)):
        features = [scored.at[row, f"reason_{k}_feature"] for k in (1, 2, 3)]
        for k, feature in enumerate(features):
            text = scored.at[row, f"reason_{k + 1}"]
            if top[row, k] > 0:
                assert shap[row, column[feature]] == pytest.approx(top[row, k], abs=1e-12)
                assert scored.at[row, f"reason_{k + 1}_contribution"] == pytest.approx(
                    top[row, k], abs=1e-12
                )
                assert text == reason_text(feature, values.at[row, feature])
            else:
                assert feature is None and np.isnan(scored.at[row, f"reason_{k + 1}_contribution"])
                assert text == (NO_REASON if k == 0 else NO_OTHER_REASON)
        named = [f for f in features if f is not None]
        assert len(set(named)) == len(named) == min(3, raising[row])
        shown = scored.loc[row, ["reason_1_contribution", "reason_2_contribution"]].to_numpy()
        assert not (shown[1] > shown[0])  # in decreasing order (NaN after a number)
    # the test period has both kinds of orders, and every fraud has three real reasons
    assert (raising >= 3).sum() >= 20 and (raising < 3).sum() >= 20
    frauds = test["label"].to_numpy() == 1
    assert scored.loc[frauds, "reason_3_feature"].notna().all()


def test_scores_survive_a_round_trip(trained, tmp_path):
    sample = trained.test.head(300)
    scored = trained.model.score(sample)
    assert set(scored["decision"]) <= {"approve", "review", "reject"}
    again = RiskModel.load(trained.model.save(tmp_path / "m")).score(sample)
    np.testing.assert_allclose(scored["risk_score"], again["risk_score"])
    pd.testing.assert_frame_equal(
        scored.filter(like="reason_"), again.filter(like="reason_"), check_exact=False
    )


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
    # the registered pyfunc (ml.registry, shared by every model) serves the model's own scores
    from ml.tracking import mlflow

    served = mlflow().pyfunc.load_model(f"models:/order_risk/{first.version}")
    pd.testing.assert_frame_equal(
        served.predict(trained.test.head(50)).reset_index(drop=True),
        trained.model.score(trained.test.head(50)).reset_index(drop=True),
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
