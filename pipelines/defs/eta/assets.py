"""ETA assets: thin wrappers around :mod:`ml.eta.pipeline`.

``eta_model_candidate`` trains on the delivered history and registers a challenger;
``eta_model_evaluation`` takes that candidate as its input and compares it with the carrier's
plan and the champion on the same held-out period (a blocking check stops a model that is not
sound); ``eta_model_champion`` applies the promotion gate; ``shipment_etas`` writes the
champion's ETA of every open shipment (``ml.shipment_etas``, replaced on every run).
"""

import math

import dagster as dg
import pandas as pd

from ml.eta import pipeline, registry
from ml.eta.config import MODEL_NAME, load_policy
from ml.eta.evaluate import HEADLINE
from ml.eta.model import TrainingError
from ordertower.lake import current_snapshot_id
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource

GROUP = "eta"
CANDIDATE = dg.AssetKey(["ml", "eta_model_candidate"])
EVALUATION = dg.AssetKey(["ml", "eta_model_evaluation"])
CHAMPION = dg.AssetKey(["ml", "eta_model_champion"])
ETAS = dg.AssetKey(["ml", "shipment_etas"])
#: what the model reads: the staging views, current even between mart builds
STAGING = [
    dg.AssetKey(["staging", "stg_tms__shipments"]),
    dg.AssetKey(["staging", "stg_tms__shipment_legs"]),
    dg.AssetKey(["staging", "stg_carriers__carrier_events"]),
]


class EtaTrainConfig(dg.Config):
    """Training knobs a run may override (the rest is ml/eta/policy.yaml)."""

    cutoff: str | None = None  # "as of" time (ISO); default: the lake's clock
    maturity_days: int | None = None  # days a shipment must be old to train


@dg.asset(
    key=CANDIDATE,
    group_name=GROUP,
    kinds={"lightgbm", "mlflow"},
    deps=STAGING,
    pool=LAKE_WRITER_POOL,
    output_required=False,
    description="Train: LightGBM on the delay against the carrier's plan, at dispatch, every "
    "scan and between scans of the delivered shipments; logged to MLflow and registered as the "
    "challenger.",
)
def eta_model_candidate(
    context: dg.AssetExecutionContext, config: EtaTrainConfig, lake: LakeResource
):
    overrides = {"maturity_days": config.maturity_days} if config.maturity_days is not None else {}
    policy = load_policy(**overrides)
    con = lake.connect(read_only=True)
    try:
        trained = pipeline.train_candidate(
            con,
            policy,
            cutoff=pd.Timestamp(config.cutoff) if config.cutoff else None,
            snapshot_id=current_snapshot_id(con),
        )
    except (TrainingError, LookupError) as exc:
        # a young lake: no delivered history yet is not a failure of the run; evaluation,
        # promotion and the ETAs wait until there is one
        context.log.warning(f"no ETA model trained: {exc}")
        return
    finally:
        con.close()
    m = trained.result.metrics
    c = trained.candidate
    head = trained.evaluation["segments"].get(HEADLINE, {})
    yield dg.Output(
        c,
        metadata={
            "model_version": c.version,
            "mlflow_run_id": c.run_id,
            "lake_snapshot_id": c.snapshot_id,
            "cutoff": c.cutoff,
            "test_period": f"{c.test_from} .. {c.test_to}",
            "train_shipments": int(m["train_shipments"]),
            "train_examples": int(m["train_examples"]),
            "best_iteration": int(m["best_iteration"]),
            "test_mae_hours_model": head.get("model", {}).get("mae_hours"),
            "test_mae_hours_plan": head.get("baseline", {}).get("mae_hours"),
        },
    )


@dg.asset(
    key=EVALUATION,
    group_name=GROUP,
    kinds={"mlflow"},
    ins={"candidate": dg.AssetIn(CANDIDATE)},
    description="Evaluate: the candidate vs the carrier's plan and vs the champion on the "
    "candidate's held-out test period (MAE hours, within ±2 h and ±24 h, at dispatch and per "
    "scan); report logged to the MLflow run.",
)
def eta_model_evaluation(
    context: dg.AssetExecutionContext, candidate: registry.Candidate, lake: LakeResource
):
    con = lake.connect(read_only=True)
    try:
        report = pipeline.evaluate_candidate(con, candidate)
    finally:
        con.close()
    segments = report["evaluation"]["segments"]
    metadata = {
        "model_version": candidate.version,
        "test_shipments": report["evaluation"]["shipments"],
        "gate": "promote" if report["gate"]["promote"] else "keep champion",
        "gate_reason": report["gate"]["reason"],
    }
    for segment in (HEADLINE, "dispatch", "scans", "between_scans"):
        for who in ("model", "baseline", "champion"):
            values = segments.get(segment, {}).get(who)
            if values:
                metadata[f"{segment}_{who}_mae_hours"] = values["mae_hours"]
                metadata[f"{segment}_{who}_within_2h"] = values.get("within_2h")
                metadata[f"{segment}_{who}_within_24h"] = values.get("within_24h")
    return dg.Output(report, metadata=metadata)


@dg.asset_check(
    asset=EVALUATION,
    blocking=True,
    description=(
        "The evaluation is sound: enough delivered shipments in the test period, finite metrics, "
        "and the model's MAE at dispatch and scans below the carrier's plan's. Blocks promotion "
        "otherwise."
    ),
)
def eta_evaluation_is_sound(context: dg.AssetCheckExecutionContext, eta_model_evaluation: dict):
    evaluation = eta_model_evaluation["evaluation"]
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
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "problems": "; ".join(problems) or "none",
            "shipments": evaluation["shipments"],
            "mae_hours_model": model.get("mae_hours"),
            "mae_hours_plan": plan.get("mae_hours"),
        },
    )


@dg.asset(
    key=CHAMPION,
    group_name=GROUP,
    kinds={"mlflow"},
    ins={"candidate": dg.AssetIn(CANDIDATE), "report": dg.AssetIn(EVALUATION)},
    description="Promote: move the champion alias to the candidate only if its MAE beats the "
    "champion's on the same test period by the configured margin; the decision is recorded in "
    "the registry either way.",
)
def eta_model_champion(
    context: dg.AssetExecutionContext, candidate: registry.Candidate, report: dict
):
    gate = pipeline.promote(candidate, report)
    return dg.MaterializeResult(
        metadata={
            "champion_version": registry.alias_version("champion"),
            "candidate_version": candidate.version,
            "promoted": gate["promote"],
            "reason": gate["reason"],
            "model": MODEL_NAME,
        }
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
