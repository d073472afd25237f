"""Risk assets: thin wrappers around :mod:`ml.risk.pipeline`.

``order_risk_features`` (daily) stores point-in-time features; the model's life cycle
(``risk_model_candidate`` -> ``risk_model_evaluation``, checked against the static rules ->
``risk_model_champion``) comes from the factory every model domain shares
(:mod:`pipelines.defs.model_lifecycle`); ``order_risk_scores`` (daily) scores each day with the
champion, with a drift check.
"""

import math
from typing import Any

import dagster as dg
import pandas as pd

from ml.risk import pipeline, registry, store
from ml.risk.config import MODEL_NAME, load_policy
from ml.risk.model import TrainingError
from pipelines.defs.model_lifecycle import ModelDomain, lifecycle_assets
from pipelines.defs.partitions import daily_partitions
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource

GROUP = "risk"
FEATURES = dg.AssetKey(["ml", "order_risk_features"])
CHAMPION = dg.AssetKey(["ml", "risk_model_champion"])
SCORES = dg.AssetKey(["ml", "order_risk_scores"])


def _window(context: dg.AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    keys = context.partition_key_range
    return store.window_bounds(keys.start, keys.end)


@dg.asset(
    key=FEATURES,
    group_name=GROUP,
    kinds={"duckdb", "python"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    deps=[
        dg.AssetKey(["intermediate", "int_order_risk_facts"]),
        dg.AssetKey(["intermediate", "int_order_fraud_labels"]),
    ],
    description="Point-in-time risk features of each day's orders (docs/risk_features.md), "
    "stored in ml.order_risk_features; a re-run replaces the day.",
)
def order_risk_features(
    context: dg.AssetExecutionContext, lake: LakeResource
) -> dg.MaterializeResult:
    start, end = _window(context)
    con = lake.connect()
    try:
        rows = store.write_features(con, start, end)
    finally:
        con.close()
    return dg.MaterializeResult(metadata={"orders": rows, "from": str(start), "to": str(end)})


def _risk_candidate_metadata(trained: Any) -> dict[str, Any]:
    m = trained.result.metrics
    return {
        "train_orders": int(m["train_orders"]),
        "test_frauds": int(m["test_frauds"]),
        "best_iteration": int(m["best_iteration"]),
        "validation_pr_auc": m["validation_pr_auc"],
        "test_roc_auc_model": trained.comparison["model"]["roc_auc"],
        "test_roc_auc_rules": trained.comparison["rules"]["roc_auc"],
    }


def _risk_evaluation_metadata(report: dict) -> dict[str, Any]:
    mvr = report["model_vs_rules"]
    return {
        "test_orders": mvr["orders"],
        "test_frauds": mvr["frauds"],
        **{f"model_{k}": v for k, v in mvr["model"].items()},
        **{f"rules_{k}": v for k, v in mvr["rules"].items()},
        "fewer_legit_intercepted_at_equal_recall": mvr["at_equal_recall"].get(
            "a_fewer_legit_intercepted"
        ),
    }


def _risk_soundness(report: dict) -> tuple[list[str], dict[str, Any]]:
    mvr = report["model_vs_rules"]
    policy = load_policy()
    problems = []
    if mvr["frauds"] < policy.min_test_frauds:
        problems.append(
            f"{mvr['frauds']} known frauds in the test period (< {policy.min_test_frauds})"
        )
    for k, v in mvr["model"].items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            problems.append(f"model metric {k} is not a number")
    for k in ("roc_auc", "pr_auc"):
        if not mvr["model_beats_rules"][k]:
            problems.append(f"the model does not beat the rules on {k}")
    return problems, {"frauds": mvr["frauds"]}


RISK = ModelDomain(
    name="risk",
    group=GROUP,
    model_name=MODEL_NAME,
    train_deps=[FEATURES],
    load_policy=load_policy,
    train_candidate=pipeline.train_candidate,
    evaluate_candidate=pipeline.evaluate_candidate,
    promote=pipeline.promote,
    alias_version=registry.alias_version,
    not_yet=(TrainingError,),
    candidate_metadata=_risk_candidate_metadata,
    evaluation_metadata=_risk_evaluation_metadata,
    soundness=_risk_soundness,
    descriptions={
        "candidate": "Train: LightGBM on matured labels, calibrated, thresholds from the review "
        "capacity and costs; logged to MLflow and registered as the challenger.",
        "evaluation": "Evaluate: the candidate vs the static rules and vs the champion on the "
        "candidate's held-out test period; report logged to the MLflow run.",
        "check": "The evaluation is sound: enough known fraud in the test period, finite "
        "metrics, and the model beats the static rules on ROC-AUC and PR-AUC. Blocks promotion "
        "otherwise.",
        "champion": "Promote: move the champion alias to the candidate only if it beats the "
        "champion by the configured margin; the decision is recorded in the registry either way.",
    },
)
(risk_model_candidate, risk_model_evaluation, risk_model_champion), risk_evaluation_is_sound = (
    lifecycle_assets(RISK)
)


@dg.asset(
    key=SCORES,
    group_name=GROUP,
    kinds={"lightgbm", "duckdb"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=LAKE_WRITER_POOL,
    deps=[FEATURES, CHAMPION],
    check_specs=[
        dg.AssetCheckSpec("every_order_scored_with_reasons", asset=SCORES),
        dg.AssetCheckSpec("risk_drift", asset=SCORES),
    ],
    description="Score each day's orders with the champion: risk_score, decision and three "
    "readable reasons in ml.order_risk_scores (a re-run replaces the day).",
)
def order_risk_scores(context: dg.AssetExecutionContext, lake: LakeResource):
    start, end = _window(context)
    current = registry.champion()
    if current is None:
        # a lake too young to train on has no champion: nothing is scored yet, which is not a
        # failure of the run (the risk marts stay empty until the first champion)
        context.log.warning(
            "no champion in the MLflow registry yet (too little matured history to train one): "
            "orders are not scored"
        )
        con = lake.connect(read_only=True)
        try:
            waiting = len(store.read_features(con, start, end))
        finally:
            con.close()
        yield dg.MaterializeResult(
            metadata={"orders": 0, "unscored": waiting, "model_version": None}
        )
        yield dg.AssetCheckResult(
            check_name="every_order_scored_with_reasons",
            passed=waiting == 0,
            metadata={"unscored": waiting, "why": "no champion model yet"},
        )
        yield dg.AssetCheckResult(
            check_name="risk_drift",
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"why": "no champion model yet: nothing to compare"},
        )
        return
    version, model = current
    con = lake.connect()
    try:
        feats = store.read_features(con, start, end)
        scored = pipeline.score_window(con, model, version, start, end)
    finally:
        con.close()
    decisions = scored["decision"].value_counts().to_dict() if len(scored) else {}
    yield dg.MaterializeResult(
        metadata={
            "orders": len(scored),
            "model_version": version,
            **{f"decision_{k}": int(v) for k, v in decisions.items()},
        }
    )
    missing = (
        int(scored[["reason_1", "reason_2", "reason_3"]].isna().any(axis=1).sum())
        if len(scored)
        else 0
    )
    unscored = len(feats) - len(scored)
    yield dg.AssetCheckResult(
        check_name="every_order_scored_with_reasons",
        passed=missing == 0 and unscored == 0,
        metadata={"orders": len(scored), "without_three_reasons": missing, "unscored": unscored},
    )
    drift = pipeline.drift_report(
        model, feats, scored["risk_score"] if len(scored) else pd.Series(dtype=float)
    )
    psi_values = {**drift["features"], "score": drift["score"]}
    worst = max((v for v in psi_values.values() if v is not None), default=0.0)
    policy = load_policy()
    yield dg.AssetCheckResult(
        check_name="risk_drift",
        passed=worst < policy.drift_warn_psi,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "max_psi": worst,
            "score_psi": drift["score"],
            **{f"psi_{k}": v for k, v in drift["features"].items()},
        },
    )
