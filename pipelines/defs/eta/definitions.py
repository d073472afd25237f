"""The ETA domain's definitions."""

import dagster as dg

from pipelines.defs.eta.assets import (
    eta_evaluation_is_sound,
    eta_model_candidate,
    eta_model_champion,
    eta_model_evaluation,
    shipment_etas,
)
from pipelines.defs.eta.automation import (
    eta_after_lake_sensor,
    eta_refresh_job,
    eta_retrain_job,
    eta_retrain_schedule,
)

defs = dg.Definitions(
    assets=[eta_model_candidate, eta_model_evaluation, eta_model_champion, shipment_etas],
    asset_checks=[eta_evaluation_is_sound],
    jobs=[eta_retrain_job, eta_refresh_job],
    schedules=[eta_retrain_schedule],
    sensors=[eta_after_lake_sensor],
)
