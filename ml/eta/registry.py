"""The ETA model in MLflow: registered model ``shipment_eta``, aliases ``challenger`` (the latest
trained candidate) and ``champion`` (the model the live scorer and ``ml.shipment_etas`` use).

The life cycle and the pyfunc are :mod:`ml.registry`'s, shared with the risk model; this module
binds them to the ETA model (its pyfunc turns a feature frame into remaining hours).
"""

from __future__ import annotations

from ml import registry as common
from ml.eta.config import MODEL_NAME
from ml.eta.model import EtaModel
from ml.registry import Candidate
from ml.tracking import client

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
ENTRY = common.ModelEntry(
    MODEL_NAME,
    EXPERIMENT,
    "eta_model",
    EtaModel.load,
    PIP_REQUIREMENTS,
    predict="predict_remaining_hours",
)
_REGISTRY = common.Registry(ENTRY)

log_candidate = _REGISTRY.log_candidate
load = _REGISTRY.load
alias_version = _REGISTRY.alias_version
champion = _REGISTRY.champion
record_decision = _REGISTRY.record_decision
