"""dbt models as Dagster assets: `dbt build` (models, then their tests as asset checks)."""

import contextlib
import functools
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster_dbt import DbtCliResource, build_dbt_asset_selection, dbt_assets
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from ordertower import lake
from ordertower.settings import environment, get_settings
from pipelines.defs.resources import LAKE_WRITER_POOL
from pipelines.defs.transform.project import (
    PARTIAL_PARSE,
    dbt_project,
    export_dbt_env,
    translator,
)

#: dbt tag of the models built on the risk scores (built by dbt_ml_marts, not dbt_lake)
RISK_SCORES_TAG = "risk_scores"
#: dbt tag of the models built on the dispatch plans (dbt_ml_marts)
DISPATCH_PLANS_TAG = "dispatch_plans"
#: dbt tag of the models built on the ETAs (batch and live; dbt_ml_marts)
SHIPMENT_ETAS_TAG = "shipment_etas"
#: the tags of the dbt models built on what the ML assets write (scores, plans, ETAs)
ML_MART_TAGS = (RISK_SCORES_TAG, DISPATCH_PLANS_TAG, SHIPMENT_ETAS_TAG)


#: a build that met the catalog locked by another writer (the live stream, maintenance) runs
#: again as a new step attempt, this many times, waiting a little longer each time; its models
#: are idempotent (tables rebuilt whole, incremental ones delete+insert by key), so the next
#: attempt completes what this one could not
LOCKED_RETRIES = 6
LOCKED_WAIT_S = 15.0


def _failure_messages(invocation: Any, exc: BaseException) -> list[str]:
    """The error text of a failed dbt invocation: dbt's per-node messages and the error."""
    messages = [str(exc)]
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no run_results.json: dbt failed before it ran any node
        results = []
    messages += [
        str(r.get("message") or "") for r in results if r.get("status") in ("error", "fail")
    ]
    return messages


def _locked_only(messages: list[str]) -> bool:
    """Whether every node that failed failed on the lake being busy (nothing else broke)."""
    nodes = messages[1:] or messages[:1]
    return all(lake.transient(m) for m in nodes)


def _dbt_echo() -> contextlib.AbstractContextManager:
    level = logging.getLevelName(get_settings().log_level)
    if isinstance(level, int) and level > logging.INFO:
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


#: invocation folders kept under the home's dbt target (artifacts and dbt.log of recent runs);
#: older ones are deleted after each run, so the disk does not fill with one per run
KEPT_INVOCATIONS = 24
#: the partition window reaches dbt as environment variables, not ``--vars``: vars are part of
#: dbt's partial-parse check, so a window in vars would make dbt parse the whole project again
WINDOW_ENV = ("ORDERTOWER_EVENTS_FROM", "ORDERTOWER_EVENTS_TO")
#: which rows the data tests read (macros/test_scope.sql): ``changed`` (the default: in an
#: incremental run over a window, the rows it ingested or derived) or ``all``
TEST_SCOPE_ENV = "ORDERTOWER_TEST_SCOPE"
TEST_SCOPES = ("changed", "all")
#: the orchestrated runs leave dbt's unit tests out: their inputs are fixed, so they prove the
#: code, not the day's data; `make test` runs them (tests/test_marts.py), as dbt recommends
PRODUCTION_EXCLUDES = ["--exclude-resource-type", "unit_test"]


def _window_env(
    window: tuple[str, str] | None, test_scope: str | None = None
) -> contextlib.AbstractContextManager:
    values: dict[str, str | None] = dict(zip(WINDOW_ENV, window or ("", ""), strict=True))
    if test_scope:
        values[TEST_SCOPE_ENV] = test_scope
    return environment(values)


def _keep_partial_parse(invocation: Any) -> None:
    """The invocation's parse becomes the next one's starting point (dagster-dbt copies the
    partial parse at the root of the target into each invocation's folder)."""
    made = Path(invocation.target_path) / PARTIAL_PARSE
    base = get_settings().dbt_target_dir
    if not made.exists():
        return
    tmp = base / f".{PARTIAL_PARSE}.{os.getpid()}"
    shutil.copyfile(made, tmp)
    os.replace(tmp, base / PARTIAL_PARSE)


def prune_invocations(keep: int = KEPT_INVOCATIONS) -> int:
    """Delete all but the newest ``keep`` invocation folders; returns how many went."""
    base = get_settings().dbt_target_dir
    folders = sorted(
        (p for p in base.iterdir() if p.is_dir()) if base.exists() else [],
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return max(0, len(folders) - keep)


@functools.cache
def _hung_tests() -> dict[str, dg.AssetKey]:
    """Singular tests hung on one model for Dagster (``meta: dagster: ref``, e.g. the PII guard
    on every staging view, shown as a check of stg_oms__orders): test name -> that asset."""
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    models = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed", "snapshot")
    }
    out = {}
    for node in manifest["nodes"].values():
        ref = ((node.get("config") or {}).get("meta") or {}).get("dagster", {}).get("ref")
        if node["resource_type"] == "test" and isinstance(ref, dict) and ref.get("name") in models:
            out[node["name"]] = translator.get_asset_key(models[ref["name"]])
    return out


def _tests_hung_on_unselected(selected: AbstractSet[dg.AssetKey]) -> list[str]:
    """The hung tests (:func:`_hung_tests`) whose asset this run does not build: Dagster runs a
    check with its asset, so dbt's indirect selection must not run them through another of their
    models (dagster-dbt would log each as an unexpected observation, a warning every run of the
    tracking marts)."""
    return sorted(name for name, key in _hung_tests().items() if key not in selected)


def dbt_build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    args: list[str],
    window: tuple[str, str] | None = None,
    test_scope: str | None = None,
) -> Iterator[Any]:
    """Run one dbt command for the step's assets (``window``: the partition keys it re-derives;
    ``test_scope``: the rows its data tests read, ``TEST_SCOPES``). When it fails only because
    another writer held the lake's catalog, the step is retried (Dagster's step retry) after a
    wait; any other failure fails the step as it is."""
    export_dbt_env()  # the lake may have been repointed since the code location loaded
    unselected = _tests_hung_on_unselected(context.selected_asset_keys)
    excludes = ["--exclude", *unselected] if unselected else []
    with _window_env(window, test_scope):
        invocation = dbt.cli([*args, *PRODUCTION_EXCLUDES, *excludes], context=context)
    try:
        # dagster-dbt echoes dbt's log to standard output: shown when the console log level
        # asks for INFO or more, otherwise kept in the invocation's dbt.log and the event log
        with _dbt_echo():
            yield from invocation.stream()
        _keep_partial_parse(invocation)
    except DagsterDbtCliRuntimeError as exc:
        messages = _failure_messages(invocation, exc)
        if not _locked_only(messages) or context.retry_number >= LOCKED_RETRIES:
            raise
        wait = LOCKED_WAIT_S * (context.retry_number + 1)
        context.log.warning(
            f"dbt met the lake's catalog held by another writer (attempt "
            f"{context.retry_number + 1}); building again in {wait:.0f} s"
        )
        raise dg.RetryRequested(max_retries=LOCKED_RETRIES, seconds_to_wait=wait) from exc
    finally:
        prune_invocations()


class DbtBuildConfig(dg.Config):
    """The partition window a run covers (dbt reads it from ``WINDOW_ENV``).

    The incremental marts re-derive what was ingested since their last run and, in addition,
    whatever landed in this window, so re-ingesting a partition range and building with its
    window re-derives exactly that range (macros/incremental.sql). With a window, the data tests
    read what the run changed (``test_scope``, macros/test_scope.sql).
    """

    events_from: str | None = None  # first partition key (YYYY-MM-DD) of the window
    events_to: str | None = None  # last partition key of the window
    full_refresh: bool = False  # rebuild the incremental models from scratch
    # the rows the data tests read: "changed" (an incremental run over a window tests the rows
    # it ingested or derived; the weekly full refresh tests every row) or "all"; unset: the
    # environment's ORDERTOWER_TEST_SCOPE, else "changed"
    test_scope: str | None = None


def dbt_build_args(config: DbtBuildConfig) -> list[str]:
    """The `dbt build` command line for a run's config."""
    dbt_window(config)  # a bad window fails before dbt starts
    if config.test_scope is not None and config.test_scope not in TEST_SCOPES:
        raise ValueError(
            f"test_scope must be one of {', '.join(TEST_SCOPES)}, not {config.test_scope!r}"
        )
    return ["build", "--full-refresh"] if config.full_refresh else ["build"]


def dbt_window(config: DbtBuildConfig) -> tuple[str, str] | None:
    """The run's partition window as two ISO dates, or None; anything else is refused."""
    if bool(config.events_from) != bool(config.events_to):
        raise ValueError("events_from and events_to go together")
    if not config.events_from or not config.events_to:
        return None
    try:
        first, last = (date.fromisoformat(d) for d in (config.events_from, config.events_to))
    except ValueError as exc:
        raise ValueError(f"the window's keys must be dates (YYYY-MM-DD): {exc}") from None
    if first > last:
        raise ValueError(f"window {config.events_from}..{config.events_to} ends before it starts")
    return first.isoformat(), last.isoformat()


def window_of(tags: dict[str, str]) -> tuple[str, str] | None:
    """The partition window an ingest run covered, from its tags (one day or a range)."""
    if tags.get(ASSET_PARTITION_RANGE_START_TAG) and tags.get(ASSET_PARTITION_RANGE_END_TAG):
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    if tags.get(PARTITION_NAME_TAG):
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    return None


#: what both dbt assets share: the project, its translator and the lake writers' pool
_DBT_ASSET = {
    "manifest": dbt_project.manifest_path,
    "project": dbt_project,
    "dagster_dbt_translator": translator,
    "pool": LAKE_WRITER_POOL,
}
#: the models of dbt_ml_marts, which dbt_lake leaves out
_ML_MARTS = " ".join(f"tag:{tag}" for tag in ML_MART_TAGS)


# the marts built on the risk model's scores, the dispatch plans and the ETAs come after the ML
# assets that write them (dbt_ml_marts)
@dbt_assets(**_DBT_ASSET, name="dbt_lake", exclude=_ML_MARTS)
def dbt_lake(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    # a window in the config wins; in a partitioned run (the daily job) it is the run's partition
    window = dbt_window(config) or window_of(context.run.tags)
    yield from dbt_build(context, dbt, dbt_build_args(config), window, config.test_scope)


@dbt_assets(**_DBT_ASSET, name="dbt_ml_marts", select=_ML_MARTS)
def dbt_ml_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """The marts on the ML assets' outputs: the risk scores (fct_order_risk, the review queue),
    the dispatch plans (waves vs baseline, shipments, routes) and the ETAs (fct_shipment_eta).
    Each is built after the ML asset it reads. A run builds what it selected: the daily job all
    of them in one dbt invocation after its ML steps, a domain job the models of its tag
    (:func:`ml_marts`)."""
    yield from dbt_build(context, dbt, ["build"])


def ml_marts(tag: str) -> dg.AssetSelection:
    """The ML marts of one tag (``ML_MART_TAGS``), with their data tests."""
    if tag not in ML_MART_TAGS:
        raise ValueError(f"no ML marts are tagged {tag!r} (tags: {', '.join(ML_MART_TAGS)})")
    return build_dbt_asset_selection([dbt_ml_marts], dbt_select=f"tag:{tag}")


#: every asset that runs dbt (their asset checks are dbt's data tests)
DBT_ASSETS = (dbt_lake, dbt_ml_marts)
