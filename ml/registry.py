"""The models' life cycle in the MLflow registry, shared by every model of the project.

A trained candidate is logged as one run (params, metrics, artifacts, the lake snapshot and
cut-off as tags) with the model folder as a pyfunc, registered under the model's name and given
the alias ``challenger``; ``champion`` is the version that serves. Every promotion decision
(promoted or not, and why) is written as tags on the model version and on its run, and as
``promotion/decision.json`` in the run, so the registry shows who replaced whom and on what
evidence. Each model module (``ml.risk.registry``, ``ml.eta.registry``) binds these functions to
its :class:`ModelEntry`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.tracking import client, experiment, mlflow

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _printed_to_log() -> Iterator[None]:
    """MLflow prints its registration notes ("Successfully registered model ...", "Created
    version ...") straight to stderr; they go to this module's debug log instead."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines():
            if line.strip():
                log.debug("mlflow: %s", line)


@dataclass(frozen=True)
class ModelEntry:
    """A model as the registry knows it."""

    name: str  # the registered model's name
    experiment: str  # the MLflow experiment its training runs go to
    bundle: str  # the folder the model saves itself to, inside the pyfunc's artifacts
    loader: Callable[[Path], Any]  # reads that folder back (``RiskModel.load``, ...)
    pip_requirements: tuple[str, ...] = ()
    predict: str = "predict"  # the model's method behind the pyfunc's predict (a frame in and out)


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


def python_model(entry: ModelEntry) -> Any:
    """The registered pyfunc of every model: loads the model folder with ``entry.loader`` and
    answers ``predict`` with the model's ``entry.predict`` method."""
    mlf = mlflow()

    class ModelPyfunc(mlf.pyfunc.PythonModel):
        def __init__(self, bundle: str, loader: Callable[[Path], Any], method: str) -> None:
            self.bundle, self.loader, self.method = bundle, loader, method

        def load_context(self, context):
            self.model = self.loader(Path(context.artifacts[self.bundle]))

        def predict(self, context, model_input, params=None):
            return getattr(self.model, self.method)(model_input)

    return ModelPyfunc(entry.bundle, entry.loader, entry.predict)


def log_candidate(
    entry: ModelEntry,
    model: Any,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: dict[str, Path],
    tags: dict[str, str],
    test_period: tuple[str, str],
    cutoff: str,
    snapshot_id: int | None,
) -> Candidate:
    """One MLflow run: params, metrics, artifacts; ``model`` (anything with ``save(path)``)
    registered as ``challenger`` behind its pyfunc (:func:`python_model`)."""
    mlf = mlflow()
    experiment(entry.experiment)
    with mlf.start_run(run_name=f"{entry.name} {cutoff[:10]}") as run:
        mlf.log_params({k: str(v)[:250] for k, v in params.items()})
        mlf.log_metrics({k: float(v) for k, v in metrics.items()})
        mlf.set_tags({**tags, "lake_snapshot_id": str(snapshot_id), "cutoff": cutoff})
        for name, path in artifacts.items():
            mlf.log_artifact(str(path), artifact_path=name)
        with tempfile.TemporaryDirectory() as tmp, _printed_to_log():
            bundle = model.save(Path(tmp) / entry.bundle)
            info = mlf.pyfunc.log_model(
                name="model",
                python_model=python_model(entry),
                artifacts={entry.bundle: str(bundle)},
                pip_requirements=list(entry.pip_requirements),
                registered_model_name=entry.name,
            )
        version = str(info.registered_model_version)
    c = client()
    c.set_registered_model_alias(entry.name, "challenger", version)
    c.set_model_version_tag(entry.name, version, "lake_snapshot_id", str(snapshot_id))
    c.set_model_version_tag(
        entry.name, version, "test_period", f"{test_period[0]}..{test_period[1]}"
    )
    return Candidate(
        run.info.run_id,
        version,
        f"models:/{entry.name}/{version}",
        test_period[0],
        test_period[1],
        cutoff,
        snapshot_id,
    )


def load(entry: ModelEntry, uri: str) -> Any:
    """A registered model (``models:/<name>/3``, ``models:/<name>@champion``)."""
    mlf = mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        local = mlf.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return entry.loader(Path(local) / "artifacts" / entry.bundle)


def alias_version(entry: ModelEntry, alias: str) -> str | None:
    mlf = mlflow()
    try:
        return str(client().get_model_version_by_alias(entry.name, alias).version)
    except mlf.exceptions.MlflowException:
        return None


def champion(entry: ModelEntry) -> tuple[str, Any] | None:
    """``(version, model)`` of the champion, or None when there is none yet."""
    version = alias_version(entry, "champion")
    if version is None:
        return None
    return version, load(entry, f"models:/{entry.name}/{version}")


def record_decision(
    entry: ModelEntry, candidate: Candidate, decision: dict[str, Any], report: dict | None
) -> None:
    """Write the gate's decision on the version and run; move ``champion`` if promoted."""
    c = client()
    if decision["promote"]:
        c.set_registered_model_alias(entry.name, "champion", candidate.version)
    tags = {
        "promotion_decision": "promoted" if decision["promote"] else "rejected",
        "promotion_reason": decision["reason"][:5000],
    }
    for k, v in tags.items():
        c.set_model_version_tag(entry.name, candidate.version, k, v)
        c.set_tag(candidate.run_id, k, v)
    payload = {"candidate": candidate.as_dict(), "decision": decision, "report": report}
    c.log_text(
        candidate.run_id, json.dumps(payload, indent=1, default=str), "promotion/decision.json"
    )


class Registry:
    """The life cycle bound to one model: what ``ml.risk.registry`` and ``ml.eta.registry``
    export as functions."""

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry

    def log_candidate(
        self,
        model: Any,
        params: dict[str, Any],
        metrics: dict[str, float],
        artifacts: dict[str, Path],
        tags: dict[str, str],
        test_period: tuple[str, str],
        cutoff: str,
        snapshot_id: int | None,
    ) -> Candidate:
        """One MLflow run: params, metrics, artifacts; the model registered as ``challenger``."""
        return log_candidate(
            self.entry, model, params, metrics, artifacts, tags, test_period, cutoff, snapshot_id
        )

    def load(self, uri: str) -> Any:
        """A registered model (``models:/<name>/3``, ``models:/<name>@champion``)."""
        return load(self.entry, uri)

    def alias_version(self, alias: str) -> str | None:
        return alias_version(self.entry, alias)

    def champion(self) -> tuple[str, Any] | None:
        """``(version, model)`` of the champion, or None when there is none yet."""
        return champion(self.entry)

    def record_decision(
        self, candidate: Candidate, decision: dict[str, Any], report: dict | None
    ) -> None:
        """Write the gate's decision on the version and run; move ``champion`` if promoted."""
        record_decision(self.entry, candidate, decision, report)
