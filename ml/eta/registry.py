"""The ETA model in MLflow: registered model ``shipment_eta``, aliases ``challenger`` (the latest
trained candidate) and ``champion`` (the model the live scorer and ``ml.shipment_etas`` use).

The life cycle is :mod:`ml.registry`, shared with the risk model; this module binds it to the
ETA model and its pyfunc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml import registry as common
from ml.eta.config import MODEL_NAME
from ml.eta.model import EtaModel
from ml.registry import Candidate
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

EXPERIMENT = "shipment_eta"
PIP_REQUIREMENTS = ("lightgbm>=4.6,<5", "numpy", "pandas")
ENTRY = common.ModelEntry(MODEL_NAME, EXPERIMENT, "eta_model", EtaModel.load, PIP_REQUIREMENTS)


def _python_model() -> Any:
    mlf = mlflow()

    class EtaPyfunc(mlf.pyfunc.PythonModel):
        """The registered model: a feature frame (ml.eta.features) -> remaining hours."""

        def load_context(self, context):
            self.model = EtaModel.load(Path(context.artifacts["eta_model"]))

        def predict(self, context, model_input, params=None):
            return self.model.predict_remaining_hours(model_input)

    return EtaPyfunc()


def log_candidate(
    model: EtaModel,
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


def load(uri: str) -> EtaModel:
    """A registered ETA model (``models:/shipment_eta/3``, ``models:/shipment_eta@champion``)."""
    return common.load(ENTRY, uri)


def alias_version(alias: str) -> str | None:
    return common.alias_version(ENTRY, alias)


def champion() -> tuple[str, EtaModel] | None:
    return common.champion(ENTRY)


def record_decision(candidate: Candidate, decision: dict[str, Any], report: dict | None) -> None:
    """Write the gate's decision on the version and run; move ``champion`` if promoted."""
    common.record_decision(ENTRY, candidate, decision, report)
