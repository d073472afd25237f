"""The risk domain's definitions."""

import dagster as dg

from pipelines.defs.risk.assets import (
    order_risk_features,
    order_risk_scores,
    risk_evaluation_is_sound,
    risk_model_candidate,
    risk_model_champion,
    risk_model_evaluation,
)
from pipelines.defs.risk.automation import (
    risk_after_lake_sensor,
    risk_marts_after_scoring_sensor,
    risk_marts_job,
    risk_retrain_job,
    risk_retrain_schedule,
    risk_score_job,
)

defs = dg.Definitions(
    assets=[
        order_risk_features,
        risk_model_candidate,
        risk_model_evaluation,
        risk_model_champion,
        order_risk_scores,
    ],
    asset_checks=[risk_evaluation_is_sound],
    jobs=[risk_retrain_job, risk_score_job, risk_marts_job],
    schedules=[risk_retrain_schedule],
    sensors=[risk_after_lake_sensor, risk_marts_after_scoring_sensor],
)
