"""The risk model in MLflow: log a trained candidate, register it, promote it by alias.

Aliases: ``challenger`` is the latest trained candidate, ``champion`` the model that scores
orders. Every promotion decision (promoted or not, and why) is written as tags on the model
version and on its run, so the registry shows who replaced whom and on what evidence. The
life cycle itself is :mod:`ml.registry`, shared with the other models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml import registry as common
from ml.registry import Candidate
from ml.risk.config import MODEL_NAME
from ml.risk.model import RiskModel
from ml.tracking import client, mlflow

__all__ = [
    "ENTRY",
    "Candidate",
    "alias_version",
    "champion",
    "client",
    "load",
    "log_candidate",
    "record_decision",
]

EXPERIMENT = "order_risk"
PIP_REQUIREMENTS = ("lightgbm>=4.6,<5", "numpy", "pandas", "scikit-learn")
ENTRY = common.ModelEntry(MODEL_NAME, EXPERIMENT, "risk_model", RiskModel.load, PIP_REQUIREMENTS)


def _python_model() -> Any:
    mlf = mlflow()

    class RiskPyfunc(mlf.pyfunc.PythonModel):
        """The registered model: scores a feature frame into risk_score, decision, reasons."""

        def load_context(self, context):
            self.model = RiskModel.load(Path(context.artifacts["risk_model"]))

        def predict(self, context, model_input, params=None):
            return self.model.score(model_input)

    return RiskPyfunc()


def log_candidate(
    model: RiskModel,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Path],
    tags: dict[str, str],
    test_period: tuple[str, str],
    cutoff: str,
    snapshot_id: int | None,
) -> Candidate:
    """One MLflow run: params, metrics, artifacts; the model registered as ``challenger``."""
    return common.log_candidate(
        ENTRY,
        model,
        _python_model(),
        params,
        metrics,
        artifacts,
        tags,
        test_period,
        cutoff,
        snapshot_id,
    )


def load(uri: str) -> RiskModel:
    """A registered risk model (``models:/order_risk/3``, ``models:/order_risk@champion``)."""
    return common.load(ENTRY, uri)


def alias_version(alias: str) -> str | None:
    return common.alias_version(ENTRY, alias)


def champion() -> tuple[str, RiskModel] | None:
    return common.champion(ENTRY)


def record_decision(candidate: Candidate, decision: dict[str, Any], report: dict | None) -> None:
    """Write the gate's decision on the version and run; move ``champion`` if promoted."""
    common.record_decision(ENTRY, candidate, decision, report)
