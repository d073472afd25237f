"""The ETA model's life cycle on the lake: train -> evaluate -> promote, and the ETAs of every
open shipment.

Each step is a plain function of an open lake connection (the Dagster assets in
``pipelines/defs/eta`` only call these and record metadata).
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

from ml.eta import registry
from ml.eta.config import MODEL_NAME, EtaPolicy, load_policy
from ml.eta.evaluate import (
    HEADLINE,
    Evaluation,
    evaluate,
    plot_segments,
    promotion_gate,
    report_markdown,
)
from ml.eta.features import (
    build_features,
    catalogue_markdown,
    feature_names,
    lake_clock,
    training_examples,
)
from ml.eta.live import eta_frame, open_points
from ml.eta.model import EtaModel, TrainingError, TrainResult, time_split, train

ETAS = "ml.shipment_etas"
ETA_TABLE_COLUMNS = {
    "shipment_id": "varchar",
    "order_id": "varchar",
    "tracking_ref": "varchar",
    "as_of": "timestamptz",
    "predicted_delivery_at": "timestamptz",
    "remaining_hours": "double",
    "planned_delivery_at": "timestamptz",
    "planned_remaining_hours": "double",
    "scans": "integer",
    "last_event_code": "varchar",
    "model_name": "varchar",
    "model_version": "varchar",
    "computed_at": "timestamptz",
}


@dataclass
class Trained:
    candidate: registry.Candidate
    result: TrainResult
    evaluation: dict


def metrics_of(evaluation: Evaluation, prefix: str = "test") -> dict[str, float]:
    """Flat metrics for MLflow: ``test_<who>_<metric>__<segment>``."""
    out = {}
    for name, seg in evaluation.segments.items():
        segment = name.replace("+", "_plus")  # MLflow allows no "+" in a metric's name
        for who in ("model", "baseline", "champion"):
            for k, v in seg.get(who, {}).items():
                if k != "examples":
                    out[f"{prefix}_{who}_{k}__{segment}"] = v
        out[f"{prefix}_examples__{segment}"] = seg["model"]["examples"]
    return out


def train_candidate(
    con: duckdb.DuckDBPyConnection,
    policy: EtaPolicy | None = None,
    cutoff: pd.Timestamp | None = None,
    snapshot_id: int | None = None,
) -> Trained:
    """Train on the delivered history, log everything to MLflow, register as ``challenger``."""
    policy = policy or load_policy()
    cutoff = pd.Timestamp(cutoff) if cutoff is not None else lake_clock(con)
    frame = training_examples(con, cutoff, policy)
    shipments = frame["shipment_id"].nunique()
    # a young lake: a test period too small for the gate would only fail the evaluation check
    test_shipments = time_split(frame, policy.split)[-1].shipments if shipments >= 20 else 0
    if test_shipments < policy.min_test_shipments:
        raise TrainingError(
            f"{shipments} shipments created {policy.maturity_days} days before {cutoff} were "
            f"delivered by then: a test period of {test_shipments} is too small to evaluate "
            f"(promotion.min_test_shipments: {policy.min_test_shipments})"
        )
    result = train(frame, policy)
    evaluation = evaluate(
        result.test, {"model": result.test["predicted_remaining_hours"].to_numpy()}, policy
    )
    test_split = result.splits[-1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "eta_features.md").write_text(catalogue_markdown())
        (out / "evaluation.md").write_text(report_markdown(evaluation, policy))
        (out / "evaluation.json").write_text(json.dumps(evaluation.as_dict(), indent=1))
        gain = result.model.booster.feature_importance("gain")
        pd.DataFrame({"feature": feature_names(), "gain": gain}).sort_values(
            "gain", ascending=False
        ).to_csv(out / "feature_importance.csv", index=False)
        artifacts = {
            "features": out / "eta_features.md",
            "evaluation": out / "evaluation.md",
            "evaluation_json": out / "evaluation.json",
            "importance": out / "feature_importance.csv",
            "plots": plot_segments(out / "mae_by_segment.png", evaluation),
        }
        candidate = registry.log_candidate(
            result.model,
            params={
                **policy.flat(),
                "feature_count": len(feature_names()),
                "sampled_share": frame.attrs.get("sampled_share", 1.0),
            },
            metrics={**result.metrics, **metrics_of(evaluation)},
            artifacts=artifacts,
            tags={"model": MODEL_NAME, "source": "ordertower"},
            test_period=(str(test_split.start), str(test_split.end)),
            cutoff=str(cutoff),
            snapshot_id=snapshot_id,
        )
    return Trained(candidate, result, evaluation.as_dict())


def held_out_examples(
    con: duckdb.DuckDBPyConnection, candidate: registry.Candidate, policy: EtaPolicy
) -> pd.DataFrame:
    """The candidate's held-out test period rebuilt from the lake: the shipments created in it,
    delivered by the candidate's cut-off."""
    start = pd.Timestamp(candidate.test_from)
    end = pd.Timestamp(candidate.test_to) + pd.Timedelta(microseconds=1)
    # the period already ends before the cut-off minus the candidate's maturity
    as_trained = EtaPolicy(**{**policy.__dict__, "maturity_days": 0})
    return training_examples(con, pd.Timestamp(candidate.cutoff), as_trained, start, end)


def evaluate_candidate(
    con: duckdb.DuckDBPyConnection,
    candidate: registry.Candidate,
    policy: EtaPolicy | None = None,
) -> dict:
    """Challenger vs the carrier's plan and vs the current champion on the challenger's test
    period. Raises when the evaluation cannot be made (no test shipments): an evaluation that
    failed is never reported as a poor score."""
    policy = policy or load_policy()
    test = held_out_examples(con, candidate, policy)
    if test.empty:
        raise TrainingError(
            f"the test period {candidate.test_from}..{candidate.test_to} has no delivered "
            "shipments in the lake: cannot evaluate"
        )
    challenger = registry.load(candidate.model_uri)
    predictions = {"model": challenger.predict_remaining_hours(test)}
    champion_version, champion_error = registry.alias_version("champion"), None
    if champion_version == candidate.version:
        champion_version = None
    if champion_version is not None:
        try:
            champion = registry.load(f"models:/{MODEL_NAME}/{champion_version}")
            predictions["champion"] = champion.predict_remaining_hours(test)
        except Exception as exc:  # a champion on an older feature set cannot predict: replace it
            champion_error = str(exc).splitlines()[0][:300]
    evaluation = evaluate(test, predictions, policy)
    headline = evaluation.segments.get(HEADLINE, {})
    gate = promotion_gate(
        headline.get("model", {}).get("mae_hours", float("nan")),
        headline.get("champion", {}).get("mae_hours"),
        evaluation.shipments,
        policy,
        champion_error,
    )
    report = {
        "candidate": candidate.as_dict(),
        "champion_version": champion_version,
        "evaluation": evaluation.as_dict(),
        "gate": gate.as_dict(),
        "evaluated_at": datetime.now(UTC).isoformat(),
    }
    client = registry.client()
    client.log_text(
        candidate.run_id, json.dumps(report, indent=1, default=str), "evaluation/report.json"
    )
    client.log_text(
        candidate.run_id,
        report_markdown(evaluation, policy) + f"\nPromotion gate: {gate.reason}\n",
        "evaluation/report.md",
    )
    return report


def promote(candidate: registry.Candidate, report: dict) -> dict:
    """Apply the gate's decision (recorded on the model version and run either way)."""
    registry.record_decision(candidate, report["gate"], report.get("evaluation"))
    return report["gate"]


# ------------------------------------------------------------------------------- ETAs of the lake


def shipment_etas(
    con: duckdb.DuckDBPyConnection,
    model: EtaModel,
    version: str,
    as_of: pd.Timestamp | None = None,
    policy: EtaPolicy | None = None,
) -> pd.DataFrame:
    """The ETA of every open shipment at ``as_of`` (default: the lake's clock), in the layout
    of ``ml.shipment_etas``: the model's prediction beside the carrier's plan."""
    policy = policy or load_policy()
    as_of = pd.Timestamp(as_of) if as_of is not None else lake_clock(con)
    feats = build_features(
        con,
        open_points(),
        {"as_of": as_of, "open_days": policy.open_within_days},
        respect_receipt=False,
    )
    out = eta_frame(feats, model, version)
    out["tracking_ref"] = feats["current_tracking_ref"].astype(str).to_numpy()
    out["scans"] = feats["scans"].to_numpy(dtype=np.int32)
    out["last_event_code"] = feats["last_event_code"].astype(str).to_numpy()
    out["model_name"] = MODEL_NAME
    out["computed_at"] = pd.Timestamp(datetime.now(UTC))
    return out[list(ETA_TABLE_COLUMNS)].sort_values("shipment_id").reset_index(drop=True)


def write_etas(con: duckdb.DuckDBPyConnection, etas: pd.DataFrame) -> int:
    """Replace ``ml.shipment_etas`` by ``etas`` in one transaction: a re-run never duplicates."""
    cols = ", ".join(f"{c} {t}" for c, t in ETA_TABLE_COLUMNS.items())
    con.execute(f"create table if not exists {ETAS} ({cols})")
    con.register("new_etas", etas[list(ETA_TABLE_COLUMNS)])
    try:
        con.execute("begin")
        con.execute(f"delete from {ETAS}")
        con.execute(f"insert into {ETAS} by name select * from new_etas")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("new_etas")
    return len(etas)
