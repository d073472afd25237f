"""The risk model's life cycle on the lake: train -> evaluate -> promote, score, drift.

Each step is a plain function of an open lake connection (the Dagster assets in
``pipelines/defs/risk`` only call these and record metadata).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml import evaluation
from ml.risk import registry, store
from ml.risk.config import MODEL_NAME, RiskPolicy, load_policy
from ml.risk.evaluate import compare_with_rules, promotion_gate, report_html
from ml.risk.features import catalogue_frame, catalogue_markdown, feature_names
from ml.risk.model import RiskModel, TrainingError, TrainResult, matured_labels, train
from ml.risk.rules import RuleSet, load_rules


def training_frame(
    con: duckdb.DuckDBPyConnection, cutoff: pd.Timestamp, policy: RiskPolicy
) -> pd.DataFrame:
    """Stored features of the matured orders, with their labels as known at ``cutoff``."""
    end = cutoff - pd.Timedelta(days=policy.maturity_days)
    feats = store.read_features(con, end=end + pd.Timedelta(microseconds=1))
    if feats.empty:
        raise TrainingError(
            f"no stored features for orders before {end} (cut-off {cutoff} minus "
            f"{policy.maturity_days} days of label maturity): materialise order_risk_features"
        )
    labels = matured_labels(feats, store.read_verdicts(con), cutoff, policy.maturity_days)
    return feats.merge(labels[["order_id", "label"]], on="order_id", how="inner")


@dataclass
class Trained:
    candidate: registry.Candidate
    result: TrainResult
    comparison: dict


def _plots(result: TrainResult, rules: RuleSet, out: Path) -> dict[str, Path]:
    test = result.test
    y = test["label"].to_numpy()
    points = rules.points(test)
    curves = {"model": (y, result.model.raw_score(test)), "rules": (y, points)}
    x = result.model.matrix(test.head(2000))
    contrib = result.model.booster.predict(
        x, num_iteration=result.model.booster.best_iteration, pred_contrib=True
    )[:, :-1]
    values = np.column_stack(
        [
            x[c].cat.codes.to_numpy(dtype=float)
            if str(x[c].dtype) == "category"
            else x[c].to_numpy(dtype=float)
            for c in x.columns
        ]
    )
    return {
        "plots": evaluation.plot_roc(out / "roc.png", curves),
        "plots_pr": evaluation.plot_pr(out / "pr.png", curves),
        "plots_calibration": evaluation.plot_calibration(
            out / "calibration.png", y, test["prob"].to_numpy()
        ),
        "plots_shap": evaluation.plot_shap_summary(
            out / "shap_summary.png", contrib, values, feature_names()
        ),
    }


def train_candidate(
    con: duckdb.DuckDBPyConnection,
    policy: RiskPolicy | None = None,
    rules: RuleSet | None = None,
    cutoff: pd.Timestamp | None = None,
    snapshot_id: int | None = None,
) -> Trained:
    """Train on the matured history, log everything to MLflow, register as ``challenger``."""
    policy = policy or load_policy()
    rules = rules or load_rules()
    cutoff = pd.Timestamp(cutoff) if cutoff is not None else store.lake_clock(con)
    frame = training_frame(con, cutoff, policy)
    result = train(frame, policy)
    comparison = compare_with_rules(result.model, rules, result.test)
    test_split = result.splits[-1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "feature_catalogue.md").write_text(catalogue_markdown())
        catalogue_frame().to_csv(out / "feature_catalogue.csv", index=False)
        (out / "model_vs_rules.json").write_text(json.dumps(comparison.as_dict(), indent=1))
        (out / "model_vs_rules.html").write_text(report_html(comparison))
        artifacts = {
            "features": out / "feature_catalogue.md",
            "features_csv": out / "feature_catalogue.csv",
            "evaluation": out / "model_vs_rules.json",
            "evaluation_html": out / "model_vs_rules.html",
            **_plots(result, rules, out),
        }
        metrics = {**result.metrics}
        metrics.update({f"test_model_{k}": v for k, v in comparison.model.items()})
        metrics.update({f"test_rules_{k}": v for k, v in comparison.rules.items()})
        fewer = comparison.equal_recall.get("a_fewer_legit_intercepted")
        if fewer is not None:
            metrics["test_fewer_legit_intercepted_at_equal_recall"] = fewer
        candidate = registry.log_candidate(
            result.model,
            params={
                **policy.flat(),
                "feature_count": len(feature_names()),
                "rules": len(rules.rules),
            },
            metrics=metrics,
            artifacts=artifacts,
            tags={"model": MODEL_NAME, "source": "ordertower"},
            test_period=(str(test_split.start), str(test_split.end)),
            cutoff=str(cutoff),
            snapshot_id=snapshot_id,
        )
    return Trained(candidate, result, comparison.as_dict())


def test_frame(con: duckdb.DuckDBPyConnection, candidate: registry.Candidate, policy: RiskPolicy):
    """The candidate's held-out test period, rebuilt from the lake with its cut-off's labels."""
    start = pd.Timestamp(candidate.test_from)
    end = pd.Timestamp(candidate.test_to) + pd.Timedelta(microseconds=1)
    feats = store.read_features(con, start=start, end=end)
    labels = matured_labels(
        feats, store.read_verdicts(con), pd.Timestamp(candidate.cutoff), policy.maturity_days
    )
    return feats.merge(labels[["order_id", "label"]], on="order_id", how="inner")


def evaluate_candidate(
    con: duckdb.DuckDBPyConnection,
    candidate: registry.Candidate,
    policy: RiskPolicy | None = None,
    rules: RuleSet | None = None,
) -> dict:
    """Challenger vs rules and vs the current champion on the challenger's test period.

    Raises when the evaluation cannot be made (no test orders): an evaluation that failed is
    never reported as a poor score.
    """
    policy = policy or load_policy()
    rules = rules or load_rules()
    test = test_frame(con, candidate, policy)
    if test.empty or test["label"].nunique() < 2:
        raise TrainingError(
            f"the test period {candidate.test_from}..{candidate.test_to} has no orders with both "
            "labels in the lake: cannot evaluate"
        )
    challenger = registry.load(candidate.model_uri)
    current = registry.champion()
    champion_version, champion_model = current if current else (None, None)
    if champion_version == candidate.version:
        champion_version, champion_model = None, None
    comparison = compare_with_rules(challenger, rules, test)
    gate = promotion_gate(challenger, champion_model, test, policy)
    report = {
        "candidate": candidate.as_dict(),
        "champion_version": champion_version,
        "model_vs_rules": comparison.as_dict(),
        "gate": gate.as_dict(),
        "evaluated_at": datetime.now(UTC).isoformat(),
    }
    client = registry.client()
    client.log_text(
        candidate.run_id, json.dumps(report, indent=1, default=str), "evaluation/report.json"
    )
    client.log_text(candidate.run_id, report_html(comparison, gate), "evaluation/report.html")
    return report


def promote(candidate: registry.Candidate, report: dict) -> dict:
    """Apply the gate's decision (recorded on the model version and run either way)."""
    registry.record_decision(candidate, report["gate"], report.get("model_vs_rules"))
    return report["gate"]


def score_window(
    con: duckdb.DuckDBPyConnection,
    model: RiskModel,
    version: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """Score the orders placed in ``[start, end)`` from their stored features and store it."""
    feats = store.read_features(con, start, end)
    if feats.empty:
        return pd.DataFrame(columns=list(store.SCORE_COLUMNS))
    scored = model.score(feats)
    scored["partition_key"] = feats["partition_key"].to_numpy()
    scored["ordered_at"] = feats["ordered_at"].to_numpy()
    scored["order_total"] = feats["order_total"].to_numpy(dtype=float)
    scored["model_name"] = MODEL_NAME
    scored["model_version"] = version
    scored["scored_at"] = pd.Timestamp(datetime.now(UTC))
    store.write_scores(con, scored, start, end)
    return scored


def drift_report(model: RiskModel, feats: pd.DataFrame, scores: pd.Series) -> dict:
    """PSI of the model's top features and of the score against its training period."""
    ref = model.drift_reference or {}
    out = {"features": {}, "score": None}
    for name, reference in (ref.get("features") or {}).items():
        if name in feats:
            out["features"][name] = evaluation.psi(
                reference, pd.to_numeric(feats[name]).to_numpy(dtype=float)
            )
    if ref.get("score") is not None and len(scores):
        out["score"] = evaluation.psi(ref["score"], scores.to_numpy(dtype=float))
    return out
