"""One train -> evaluate -> gate -> promote life cycle for every model domain (risk, ETA).

Each domain describes itself once (:class:`ModelDomain`: its asset keys, its policy and
pipeline functions, what its metadata shows and what makes its evaluation sound) and
:func:`lifecycle_assets` makes the same four definitions for it:

* ``<domain>_model_candidate``: trains on the lake (a run config may move the cut-off or the
  maturity), logs to MLflow and registers the challenger; a young lake with too little history
  is a warning, not a failure, and the steps after it wait;
* ``<domain>_model_evaluation``: the candidate against its baseline and the champion on the
  candidate's held-out period;
* ``<domain>_evaluation_is_sound``: a blocking check (enough examples, finite metrics, the
  baseline beaten) that stops promotion otherwise;
* ``<domain>_model_champion``: the promotion gate, recorded in the registry either way.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from ordertower.lake import current_snapshot_id
from pipelines.defs.resources import LAKE_WRITER_POOL, LakeResource


class TrainConfig(dg.Config):
    """Training knobs a run may override (the rest is the domain's policy.yaml)."""

    cutoff: str | None = None  # "as of" time (ISO); default: the lake's clock
    maturity_days: int | None = None  # days an example must be old to train


@dataclass(frozen=True)
class ModelDomain:
    name: str  # "risk", "eta": the assets are ml/<name>_model_candidate and so on
    group: str
    model_name: str  # the registered MLflow model
    train_deps: list[dg.AssetKey]
    load_policy: Callable[..., Any]
    train_candidate: Callable[..., Any]  # (con, policy, cutoff=, snapshot_id=) -> trained
    evaluate_candidate: Callable[[Any, Any], dict]  # (con, candidate) -> report
    promote: Callable[[Any, dict], dict]  # (candidate, report) -> gate
    alias_version: Callable[[str], Any]
    #: errors that mean "too little history to train yet" (a warning, not a failure)
    not_yet: tuple[type[Exception], ...]
    candidate_metadata: Callable[[Any], dict[str, Any]]  # trained -> metadata
    evaluation_metadata: Callable[[dict], dict[str, Any]]  # report -> metadata
    #: report -> (problems, metadata): what makes the evaluation unfit to promote
    soundness: Callable[[dict], tuple[list[str], dict[str, Any]]]
    descriptions: dict[str, str] = field(default_factory=dict)  # candidate/evaluation/...
    label: str = ""  # how messages name the model ("ETA"); the name by default

    def key(self, what: str) -> dg.AssetKey:
        return dg.AssetKey(["ml", f"{self.name}_model_{what}"])


def lifecycle_assets(
    domain: ModelDomain,
) -> tuple[list[dg.AssetsDefinition], dg.AssetChecksDefinition]:
    """The candidate, evaluation and champion assets of ``domain``, and its soundness check."""
    candidate_key, evaluation_key = domain.key("candidate"), domain.key("evaluation")

    @dg.asset(
        key=candidate_key,
        group_name=domain.group,
        kinds={"lightgbm", "mlflow"},
        deps=domain.train_deps,
        pool=LAKE_WRITER_POOL,
        output_required=False,
        description=domain.descriptions.get("candidate"),
    )
    def candidate(context: dg.AssetExecutionContext, config: TrainConfig, lake: LakeResource):
        overrides = (
            {"maturity_days": config.maturity_days} if config.maturity_days is not None else {}
        )
        policy = domain.load_policy(**overrides)
        con = lake.connect(read_only=True)
        try:
            trained = domain.train_candidate(
                con,
                policy,
                cutoff=pd.Timestamp(config.cutoff) if config.cutoff else None,
                snapshot_id=current_snapshot_id(con),
            )
        except domain.not_yet as exc:
            # a young lake: too little history is not a failure of the run; evaluation and
            # promotion (and what uses the champion) wait until there is enough
            context.log.warning(f"no {domain.label or domain.name} model trained: {exc}")
            return
        finally:
            con.close()
        c = trained.candidate
        yield dg.Output(
            c,
            metadata={
                "model_version": c.version,
                "mlflow_run_id": c.run_id,
                "lake_snapshot_id": c.snapshot_id,
                "cutoff": c.cutoff,
                "test_period": f"{c.test_from} .. {c.test_to}",
                **domain.candidate_metadata(trained),
            },
        )

    @dg.asset(
        key=evaluation_key,
        group_name=domain.group,
        kinds={"mlflow"},
        ins={"candidate": dg.AssetIn(candidate_key)},
        description=domain.descriptions.get("evaluation"),
    )
    def evaluation(context: dg.AssetExecutionContext, candidate: Any, lake: LakeResource):
        con = lake.connect(read_only=True)
        try:
            report = domain.evaluate_candidate(con, candidate)
        finally:
            con.close()
        return dg.Output(
            report,
            metadata={
                "model_version": candidate.version,
                **domain.evaluation_metadata(report),
                "gate": "promote" if report["gate"]["promote"] else "keep champion",
                "gate_reason": report["gate"]["reason"],
            },
        )

    @dg.asset_check(
        asset=evaluation_key,
        name=f"{domain.name}_evaluation_is_sound",
        blocking=True,
        description=domain.descriptions.get("check"),
    )
    def sound(context: dg.AssetCheckExecutionContext, report: dict):
        problems, metadata = domain.soundness(report)
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={"problems": "; ".join(problems) or "none", **metadata},
        )

    @dg.asset(
        key=domain.key("champion"),
        group_name=domain.group,
        kinds={"mlflow"},
        ins={"candidate": dg.AssetIn(candidate_key), "report": dg.AssetIn(evaluation_key)},
        description=domain.descriptions.get("champion"),
    )
    def champion(context: dg.AssetExecutionContext, candidate: Any, report: dict):
        gate = domain.promote(candidate, report)
        return dg.MaterializeResult(
            metadata={
                "champion_version": domain.alias_version("champion"),
                "candidate_version": candidate.version,
                "promoted": gate["promote"],
                "reason": gate["reason"],
                "model": domain.model_name,
            }
        )

    return [candidate, evaluation, champion], sound
