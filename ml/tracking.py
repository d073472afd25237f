"""MLflow set-up shared by the models: tracking and registry in the project's store.

Tracking and registry default to ``sqlite:///$ORDERTOWER_HOME/mlflow.db`` and artifacts to
``$ORDERTOWER_HOME/mlartifacts`` (never ``./mlruns`` in whatever directory a process started
in); ``MLFLOW_TRACKING_URI`` points elsewhere. ``import mlflow`` takes seconds, so it happens
here, on first use.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ordertower.settings import get_settings


def mlflow() -> Any:
    """The configured ``mlflow`` module (imported lazily)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow as _mlflow

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    uri = settings.mlflow_tracking_uri
    if _mlflow.get_tracking_uri() != uri:
        _mlflow.set_tracking_uri(uri)
        _mlflow.set_registry_uri(uri)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return _mlflow


def experiment(name: str) -> str:
    """The experiment's id, created with its artifacts under ``ORDERTOWER_HOME``."""
    mlf = mlflow()
    found = mlf.get_experiment_by_name(name)
    if found is not None:
        mlf.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    root = get_settings().mlflow_artifact_root / name
    root.mkdir(parents=True, exist_ok=True)
    exp_id = mlf.create_experiment(name, artifact_location=root.resolve().as_uri())
    mlf.set_experiment(experiment_id=exp_id)
    return exp_id


def client() -> Any:
    return mlflow().MlflowClient()
