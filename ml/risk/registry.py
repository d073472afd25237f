"""The risk model in MLflow: log a trained candidate, register it, promote it by alias.

Aliases: ``challenger`` is the latest trained candidate, ``champion`` the model that scores
orders. Every promotion decision (promoted or not, and why) is written as tags on the model
version and on its run, so the registry shows who replaced whom and on what evidence.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.risk.config import MODEL_NAME
from ml.risk.model import RiskModel
from ml.tracking import client, experiment, mlflow

EXPERIMENT = "order_risk"
PIP_REQUIREMENTS = ["lightgbm>=4.6,<5", "numpy", "pandas", "scikit-learn"]


def _python_model() -> Any:
    mlf = mlflow()

    class RiskPyfunc(mlf.pyfunc.PythonModel):
        """The registered model: scores a feature frame into risk_score, decision, reasons."""

        def load_context(self, context):
            self.model = RiskModel.load(Path(context.artifacts["risk_model"]))

        def predict(self, context, model_input, params=None):
            return self.model.score(model_input)

    return RiskPyfunc()


@dataclass(frozen=True)
class Candidate:
    """A trained model as registered: what evaluate and promote receive."""

    run_id: str
    version: str
    model_uri: str
    test_from: str
    test_to: str
    cutoff: str
    snapshot_id: int | None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


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
    mlf = mlflow()
    experiment(EXPERIMENT)
    with mlf.start_run(run_name=f"order_risk {cutoff[:10]}") as run:
        mlf.log_params({k: str(v)[:250] for k, v in params.items()})
        mlf.log_metrics({k: float(v) for k, v in metrics.items()})
        mlf.set_tags({**tags, "lake_snapshot_id": str(snapshot_id), "cutoff": cutoff})
        for name, path in artifacts.items():
            mlf.log_artifact(str(path), artifact_path=name)
        with tempfile.TemporaryDirectory() as tmp:
            bundle = model.save(Path(tmp) / "risk_model")
            info = mlf.pyfunc.log_model(
                name="model",
                python_model=_python_model(),
                artifacts={"risk_model": str(bundle)},
                pip_requirements=PIP_REQUIREMENTS,
                registered_model_name=MODEL_NAME,
            )
        version = str(info.registered_model_version)
    c = client()
    c.set_registered_model_alias(MODEL_NAME, "challenger", version)
    c.set_model_version_tag(MODEL_NAME, version, "lake_snapshot_id", str(snapshot_id))
    c.set_model_version_tag(
        MODEL_NAME, version, "test_period", f"{test_period[0]}..{test_period[1]}"
    )
    return Candidate(
        run.info.run_id,
        version,
        f"models:/{MODEL_NAME}/{version}",
        test_period[0],
        test_period[1],
        cutoff,
        snapshot_id,
    )


def load(uri: str) -> RiskModel:
    """A registered risk model (``models:/order_risk/3``, ``models:/order_risk@champion``)."""
    mlf = mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        local = mlf.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return RiskModel.load(Path(local) / "artifacts" / "risk_model")


def alias_version(alias: str) -> str | None:
    mlf = mlflow()
    try:
        return str(client().get_model_version_by_alias(MODEL_NAME, alias).version)
    except mlf.exceptions.MlflowException:
        return None


def champion() -> tuple[str, RiskModel] | None:
    version = alias_version("champion")
    if version is None:
        return None
    return version, load(f"models:/{MODEL_NAME}/{version}")


def record_decision(candidate: Candidate, decision: dict[str, Any], report: dict | None) -> None:
    """Write the gate's decision on the version and run; move ``champion`` if promoted."""
    c = client()
    if decision["promote"]:
        c.set_registered_model_alias(MODEL_NAME, "champion", candidate.version)
    tags = {
        "promotion_decision": "promoted" if decision["promote"] else "rejected",
        "promotion_reason": decision["reason"][:5000],
    }
    for k, v in tags.items():
        c.set_model_version_tag(MODEL_NAME, candidate.version, k, v)
        c.set_tag(candidate.run_id, k, v)
    payload = {"candidate": candidate.as_dict(), "decision": decision, "report": report}
    c.log_text(
        candidate.run_id, json.dumps(payload, indent=1, default=str), "promotion/decision.json"
    )
