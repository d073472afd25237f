"""ETA assets: thin wrappers around :mod:`ml.eta.pipeline`.

The model's life cycle (``eta_model_candidate`` -> ``eta_model_evaluation``, checked against
the carrier's plan -> ``eta_model_champion``) comes from the factory every model domain shares
(:mod:`pipelines.defs.model_lifecycle`); ``shipment_etas`` writes the champion's ETA of every
open shipment (``ml.shipment_etas``, replaced on every run).
"""

import math
from typing import Any

import dagster as dg

from ml.eta import pipeline, registry
from ml.eta.config import MODEL_NAME, load_policy
from ml.eta.evaluate import HEADLINE
from ml.eta.model import TrainingError
from pipelines.defs.model_lifecycle import ModelDomain, lifecycle_assets
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource

GROUP = "eta"
CHAMPION = dg.AssetKey(["ml", "eta_model_champion"])
ETAS = dg.AssetKey(["ml", "shipment_etas"])
#: what the model reads: the staging views, current even between mart builds
STAGING = [
    dg.AssetKey(["staging", "stg_tms__shipments"]),
    dg.AssetKey(["staging", "stg_tms__shipment_legs"]),
    dg.AssetKey(["staging", "stg_carriers__carrier_events"]),
]


def _eta_candidate_metadata(trained: Any) -> dict[str, Any]:
    m = trained.result.metrics
    head = trained.evaluation["segments"].get(HEADLINE, {})
    return {
        "train_shipments": int(m["train_shipments"]),
        "train_examples": int(m["train_examples"]),
        "best_iteration": int(m["best_iteration"]),
        "test_mae_hours_model": head.get("model", {}).get("mae_hours"),
        "test_mae_hours_plan": head.get("baseline", {}).get("mae_hours"),
    }


def _eta_evaluation_metadata(report: dict) -> dict[str, Any]:
    segments = report["evaluation"]["segments"]
    metadata: dict[str, Any] = {"test_shipments": report["evaluation"]["shipments"]}
    for segment in (HEADLINE, "dispatch", "scans", "between_scans"):
        for who in ("model", "baseline", "champion"):
            values = segments.get(segment, {}).get(who)
            if values:
                metadata[f"{segment}_{who}_mae_hours"] = values["mae_hours"]
                metadata[f"{segment}_{who}_within_2h"] = values.get("within_2h")
                metadata[f"{segment}_{who}_within_24h"] = values.get("within_24h")
    return metadata


def _eta_soundness(report: dict) -> tuple[list[str], dict[str, Any]]:
    evaluation = report["evaluation"]
    policy = load_policy()
    problems = []
    if evaluation["shipments"] < policy.min_test_shipments:
        problems.append(
            f"{evaluation['shipments']} delivered shipments in the test period "
            f"(< {policy.min_test_shipments})"
        )
    head = evaluation["segments"].get(HEADLINE, {})
    model, plan = head.get("model", {}), head.get("baseline", {})
    for k, v in model.items():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            problems.append(f"model metric {k} is not a number")
    if not model or not plan:
        problems.append("no dispatch or scan examples in the test period")
    elif not model["mae_hours"] < plan["mae_hours"]:
        problems.append(
            f"the model's MAE {model['mae_hours']:.2f} h does not beat the carrier's plan's "
            f"{plan['mae_hours']:.2f} h"
        )
    return problems, {
        "shipments": evaluation["shipments"],
        "mae_hours_model": model.get("mae_hours"),
        "mae_hours_plan": plan.get("mae_hours"),
    }


ETA = ModelDomain(
    name="eta",
    label="ETA",
    group=GROUP,
    model_name=MODEL_NAME,
    train_deps=STAGING,
    load_policy=load_policy,
    train_candidate=pipeline.train_candidate,
    evaluate_candidate=pipeline.evaluate_candidate,
    promote=pipeline.promote,
    alias_version=registry.alias_version,
    not_yet=(TrainingError, LookupError),
    candidate_metadata=_eta_candidate_metadata,
    evaluation_metadata=_eta_evaluation_metadata,
    soundness=_eta_soundness,
    descriptions={
        "candidate": "Train: LightGBM on the delay against the carrier's plan, at dispatch, "
        "every scan and between scans of the delivered shipments; logged to MLflow and "
        "registered as the challenger.",
        "evaluation": "Evaluate: the candidate vs the carrier's plan and vs the champion on the "
        "candidate's held-out test period (MAE hours, within ±2 h and ±24 h, at dispatch and per "
        "scan); report logged to the MLflow run.",
        "check": "The evaluation is sound: enough delivered shipments in the test period, "
        "finite metrics, and the model's MAE at dispatch and scans below the carrier's plan's. "
        "Blocks promotion otherwise.",
        "champion": "Promote: move the champion alias to the candidate only if its MAE beats "
        "the champion's on the same test period by the configured margin; the decision is "
        "recorded in the registry either way.",
    },
)
(eta_model_candidate, eta_model_evaluation, eta_model_champion), eta_evaluation_is_sound = (
    lifecycle_assets(ETA)
)


@dg.asset(
    key=ETAS,
    group_name=GROUP,
    kinds={"lightgbm", "duckdb"},
    deps=[*STAGING, CHAMPION],
    pool=LAKE_WRITER_POOL,
    check_specs=[dg.AssetCheckSpec("every_open_shipment_has_one_eta", asset=ETAS)],
    description="The champion's ETA of every open shipment at the lake's clock, beside the "
    "carrier's plan, in ml.shipment_etas (replaced on every run).",
)
def shipment_etas(context: dg.AssetExecutionContext, lake: LakeResource):
    current = registry.champion()
    if current is None:
        context.log.warning("no ETA champion in the MLflow registry yet: no ETAs are written")
        yield dg.MaterializeResult(metadata={"shipments": 0, "model_version": None})
        yield dg.AssetCheckResult(
            check_name="every_open_shipment_has_one_eta",
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"why": "no champion model yet"},
        )
        return
    version, model = current
    con = lake.connect()
    try:
        etas = pipeline.shipment_etas(con, model, version)
        rows = pipeline.write_etas(con, etas)
    finally:
        con.close()
    as_of = etas["as_of"].max() if rows else None
    yield dg.MaterializeResult(
        metadata={
            "shipments": rows,
            "as_of": str(as_of),
            "model_version": version,
            "mean_remaining_hours": float(etas["remaining_hours"].mean()) if rows else None,
            "overdue_by_plan": int((etas["planned_remaining_hours"] < 0).sum()),
        }
    )
    duplicated = int(etas["shipment_id"].duplicated().sum())
    missing = int(etas["predicted_delivery_at"].isna().sum())
    in_the_past = int((etas["predicted_delivery_at"] < etas["as_of"]).sum())
    yield dg.AssetCheckResult(
        check_name="every_open_shipment_has_one_eta",
        passed=duplicated == missing == in_the_past == 0,
        metadata={
            "shipments": rows,
            "duplicated": duplicated,
            "without_eta": missing,
            "eta_before_as_of": in_the_past,
        },
    )
