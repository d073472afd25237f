"""When the ETA model retrains, and when the lake's ETAs are refreshed."""

import dagster as dg

from pipelines.defs.eta.assets import (
    eta_model_candidate,
    eta_model_champion,
    eta_model_evaluation,
    shipment_etas,
)
from pipelines.defs.transform.assets import SHIPMENT_ETAS_TAG, ml_marts
from pipelines.defs.transform.automation import transform_lake_job

eta_retrain_job = dg.define_asset_job(
    "eta_retrain",
    selection=dg.AssetSelection.assets(
        eta_model_candidate, eta_model_evaluation, eta_model_champion
    ),
    description="Train an ETA challenger, evaluate it against the carrier's plan and the "
    "champion, promote it if it wins.",
)

eta_refresh_job = dg.define_asset_job(
    "eta_refresh",
    selection=dg.AssetSelection.assets(shipment_etas) | ml_marts(SHIPMENT_ETAS_TAG),
    description="The champion's ETA of every open shipment (ml.shipment_etas), then fct_shipment_eta.",
)

#: weekly, on Monday night, after the risk model (03:00): a week of new deliveries to learn from
eta_retrain_schedule = dg.ScheduleDefinition(
    job=eta_retrain_job,
    cron_schedule="30 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly retraining; the promotion gate decides whether the new model takes over.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[transform_lake_job],
    request_job=eta_refresh_job,
    description="After the lake is built, refresh the ETA of every open shipment.",
)
def eta_after_lake_sensor(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=context.dagster_run.run_id)
