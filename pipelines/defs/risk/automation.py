"""When the risk model retrains, and when orders are scored."""

import dagster as dg

from pipelines.defs.risk.assets import (
    order_risk_features,
    order_risk_scores,
    risk_model_candidate,
    risk_model_champion,
    risk_model_evaluation,
)
from pipelines.defs.transform.assets import RISK_SCORES_TAG, ml_marts
from pipelines.defs.transform.automation import transform_lake_job, window_of

risk_retrain_job = dg.define_asset_job(
    "risk_retrain",
    selection=dg.AssetSelection.assets(
        risk_model_candidate, risk_model_evaluation, risk_model_champion
    ),
    description="Train a challenger, evaluate it against the rules and the champion, promote it if it wins.",
)

risk_score_job = dg.define_asset_job(
    "risk_score",
    selection=dg.AssetSelection.assets(order_risk_features, order_risk_scores),
    description="Features and scores of a day's orders (then the risk marts).",
    partitions_def=order_risk_scores.partitions_def,
)

risk_marts_job = dg.define_asset_job(
    "risk_marts",
    selection=ml_marts(RISK_SCORES_TAG),
    description="The marts on the scores: fct_order_risk and the review queue.",
)

#: weekly, on Monday night: new matured labels have arrived since the last training
risk_retrain_schedule = dg.ScheduleDefinition(
    job=risk_retrain_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly retraining; the promotion gate decides whether the new model takes over.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[transform_lake_job],
    request_job=risk_score_job,
    description="After the lake is built for a window, compute features and scores for it.",
)
def risk_after_lake_sensor(context: dg.RunStatusSensorContext):
    config = context.dagster_run.run_config.get("ops", {}).get("dbt_lake", {}).get("config", {})
    window = (config.get("events_from"), config.get("events_to"))
    if not all(window):
        tags_window = window_of(context.dagster_run.tags)
        if tags_window is None:
            return dg.SkipReason("the lake run covered no partition window")
        window = tags_window
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return dg.RunRequest(
        run_key=context.dagster_run.run_id,
        tags={ASSET_PARTITION_RANGE_START_TAG: window[0], ASSET_PARTITION_RANGE_END_TAG: window[1]},
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[risk_score_job],
    request_job=risk_marts_job,
    description="After scoring, rebuild the risk marts (scores, review queue).",
)
def risk_marts_after_scoring_sensor(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=context.dagster_run.run_id)
