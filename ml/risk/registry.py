"""The risk model in MLflow: registered model ``order_risk``, aliases ``challenger`` (the latest
trained candidate) and ``champion`` (the model that scores orders).

Every promotion decision (promoted or not, and why) is written as tags on the model version and
on its run, so the registry shows who replaced whom and on what evidence. The life cycle and
the pyfunc are :mod:`ml.registry`'s, shared with the other models; this module binds them to
the risk model (its pyfunc scores a feature frame into risk_score, decision and reasons).
"""

from __future__ import annotations

from ml import registry as common
from ml.registry import Candidate
from ml.risk.config import MODEL_NAME
from ml.risk.model import RiskModel
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

EXPERIMENT = "order_risk"
PIP_REQUIREMENTS = ("lightgbm>=4.6,<5", "numpy", "pandas", "scikit-learn")
ENTRY = common.ModelEntry(
    MODEL_NAME, EXPERIMENT, "risk_model", RiskModel.load, PIP_REQUIREMENTS, predict="score"
)
_REGISTRY = common.Registry(ENTRY)

log_candidate = _REGISTRY.log_candidate
load = _REGISTRY.load
alias_version = _REGISTRY.alias_version
champion = _REGISTRY.champion
record_decision = _REGISTRY.record_decision
