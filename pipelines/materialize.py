"""Materialise the project's assets in-process (what ``ordertower materialize`` runs).

The selection is split into runs that alternate between unpartitioned assets and the
daily-partitioned ones (see :func:`plan_stages`): the reference data first, then the ingest over
a partition range in a single run (their backfill policy is single-run), so a 90-day world lands
in one pass instead of 90 runs, then dbt, the risk features over the same range, the model, the
scores and the marts on them. Runs are recorded in the Dagster instance under ``DAGSTER_HOME``
and show up in the UI like any other run.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO, TYPE_CHECKING, NamedTuple

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from ordertower.redact import redact
from ordertower.settings import get_settings
from pipelines.defs.partitions import daily_partitions
from pipelines.ingest.runner import landed_partitions
from pipelines.ingest.sources import SOURCES
from pipelines.lake_files import LakeDamaged, describe, drop_damaged, find_damage, lake_damage
from pipelines.progress import StageProgress, follow, progress_logger

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph


class MaterializeError(RuntimeError):
    """A materialisation could not run or failed (message says which step and why)."""


@dataclass
class MaterializeSummary:
    runs: list[str] = field(default_factory=list)
    partition_range: tuple[str, str] | None = None
    assets: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)  #: each stage's closing progress line


DAGSTER_YAML = """\
# Written by Order Control Tower on first use; edit freely.
telemetry:
  enabled: false
concurrency:
  pools:
    # lake_writer: the embedded SQLite catalog takes one writer at a time
    default_limit: 1
# Dagster's SQLite event log, reusing one database engine per file instead of building one per
# event (pipelines/dagster_storage.py); the files are where Dagster keeps them by default
event_log_storage:
  module: pipelines.dagster_storage
  class: EngineReusingSqliteEventLogStorage
"""

#: dagster.yaml as homes created before the event log storage got it: upgraded when unedited
_EARLIER_DAGSTER_YAML = DAGSTER_YAML.split("# Dagster's SQLite event log")[0]


def ensure_dagster_home() -> str:
    """Create DAGSTER_HOME with its dagster.yaml (no telemetry, one lake writer at a time, the
    event log of :mod:`pipelines.dagster_storage`); a file left as an earlier version wrote it
    is brought up to date, an edited one is left alone."""
    home = get_settings().dagster_home
    config = home / "dagster.yaml"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not config.exists() or config.read_text() == _EARLIER_DAGSTER_YAML:
            config.write_text(DAGSTER_YAML)
    except OSError as exc:
        raise MaterializeError(
            f"cannot prepare the Dagster home {home} (DAGSTER_HOME): {exc.strerror or exc}"
        ) from exc
    return str(home)


def instance() -> dg.DagsterInstance:
    os.environ["DAGSTER_HOME"] = ensure_dagster_home()
    return dg.DagsterInstance.get()


def landing_range() -> tuple[str, str] | None:
    """First and last day that has files in the landing zone."""
    landing = get_settings().landing_dir
    keys = sorted({k for s in SOURCES if s.partitioned for k in landed_partitions(s, landing)})
    return (keys[0], keys[-1]) if keys else None


def parse_partition(partition: str | None) -> tuple[str, str] | None:
    if partition is None:
        return landing_range()
    start, _, end = partition.partition("...")
    end = end or start
    valid = set(daily_partitions.get_partition_keys())
    for key in (start, end):
        if key not in valid:
            raise MaterializeError(
                f"partition {key!r} is not a day between {daily_partitions.start.date()} and today "
                "(format YYYY-MM-DD, a range as START...END)"
            )
    if start > end:
        raise MaterializeError(f"partition range {start}...{end} ends before it starts")
    return start, end


class Stage(NamedTuple):
    """One run of ``ordertower materialize``: assets of one kind, daily-partitioned or not.
    ``days``: a partitioned run's last days only (:func:`recent_stages`), else the window."""

    partitioned: bool
    keys: set[dg.AssetKey]
    days: int | None = None


def parse_recent(items: list[str] | None) -> dict[str, int]:
    """``GROUP=DAYS`` items (``--recent dispatch=30``) as a mapping."""
    out: dict[str, int] = {}
    for item in items or []:
        group, sep, days = item.partition("=")
        if not sep or not group.strip() or not days.strip().isdigit() or int(days) < 1:
            raise MaterializeError(f"--recent {item!r}: expected GROUP=DAYS, e.g. dispatch=30")
        out[group.strip()] = int(days)
    return out


def recent_stages(
    graph: BaseAssetGraph, stages: list[Stage], recent: Mapping[str, int]
) -> list[Stage]:
    """The stages with the partitioned assets of the ``recent`` groups (group -> days) split
    off into runs of their own over the window's last days: the demo plans the last month's
    dispatch waves, not every day of the world's history (each wave is a MIP and van rounds).
    The days before stay unmaterialised for those assets (a backfill in the UI fills them).
    A split-off run comes after the rest of its stage unless the rest reads what it builds."""
    if not recent:
        return stages
    unknown = set(recent) - {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    if unknown:
        raise MaterializeError(f"--recent: no asset group named {', '.join(sorted(unknown))}")
    out: list[Stage] = []
    for stage in stages:
        if not stage.partitioned:
            out.append(stage)
            continue
        parts: dict[int | None, set[dg.AssetKey]] = {}
        for k in stage.keys:
            parts.setdefault(recent.get(graph.get(k).group_name or ""), set()).add(k)
        rest = parts.pop(None, set())
        split = [Stage(True, keys, days) for days, keys in sorted(parts.items())]
        reads = set().union(*(graph.get_ancestor_asset_keys(k) for k in rest)) if rest else set()
        first = [s for s in split if s.keys & reads]
        later = [s for s in split if not s.keys & reads]
        out.extend(first + ([Stage(True, rest)] if rest else []) + later)
    return out


def stage_window(stage: Stage, window: tuple[str, str] | None) -> tuple[str, str] | None:
    """The days a stage's run covers: the window, or its last ``stage.days`` of them."""
    if window is None or not stage.partitioned or stage.days is None:
        return window
    start, end = date.fromisoformat(window[0]), date.fromisoformat(window[1])
    return (max(start, end - timedelta(days=stage.days - 1)).isoformat(), window[1])


def plan_stages(
    graph: BaseAssetGraph,
    keys: set[dg.AssetKey],
    partitioned: set[dg.AssetKey],
    owner: Mapping[dg.AssetKey, dg.AssetsDefinition],
) -> list[Stage]:
    """The runs to materialise ``keys`` in, in order; each run holds one kind of asset.

    ``partitioned`` are the keys with a daily partitions definition (their runs cover the
    partition window); ``owner`` maps every key to the asset definition that builds it.

    A key's phase is the largest number of changes of kind on a path down to it from the
    selection's roots, counting only the selected assets on it (a path through unselected
    assets still orders the selected ones at its ends), so a run starts only once everything it
    reads was built by an earlier run: reference data, the partitioned ingest, dbt, the
    partitioned risk features, the model, the partitioned scores, the marts on them. Even
    phases are unpartitioned, odd ones partitioned, so unpartitioned roots (the reference data
    the ingest reads) run first.

    All selected keys of one multi-asset share the latest phase among them (one dbt invocation
    builds them together). A multi-asset that cannot be subset and has a partitioned key runs
    whole in a partitioned run. A subsettable multi-asset whose keys cannot share a run (one of
    them reads, through an asset of the other kind, what another one builds) is split across
    runs instead; a multi-asset that cannot be subset and cannot share a run is an error.
    """
    order = [k for k in graph.toposorted_asset_keys if k in keys]
    defs_of = {id(owner[k]): owner[k] for k in order}
    # a key's kind: a non-subsettable multi-asset with a partitioned key runs in a partitioned run
    kind = {k: k in partitioned for k in order}
    for a in defs_of.values():
        members = a.keys & keys
        if not a.can_subset and members & partitioned:
            kind.update(dict.fromkeys(members, True))
    # edges (a, b, step): b's phase is at least a's plus step (1 where the kind changes)
    edges = [
        (a, k, int(kind[a] != kind[k])) for k in order for a in _selected_parents(graph, k, keys)
    ]
    # keys of one multi-asset (of one kind) share a phase: a ring of zero steps between them
    groups = []
    for a in defs_of.values():
        for kind_ in (False, True):
            members = [k for k in order if owner[k] is a and kind[k] == kind_]
            if len(members) > 1:
                groups.append((a, members))
    while True:
        ring = [
            (m, n, 0)
            for _, members in groups
            for m, n in zip(members, members[1:] + members[:1], strict=True)
        ]
        # a cycle with a change of kind on it has no phases: the multi-assets on it split up
        stuck = _cycles_with_a_step(order, edges + ring)
        if not stuck:
            break
        on_cycle = [(a, members) for a, members in groups if set(members) & stuck]
        if not any(a.can_subset for a, _ in on_cycle):
            names = ", ".join(sorted({a.node_def.name for a, _ in on_cycle}))
            raise MaterializeError(
                f"cannot order the runs: {names} reads what it builds through an asset "
                "that is partitioned the other way"
            )
        groups = [(a, m) for a, m in groups if not (a.can_subset and set(m) & stuck)]
    edges += ring
    phase = {k: int(kind[k]) for k in order}
    changed = True
    while changed:  # longest paths; ends since no cycle has a step on it
        changed = False
        for a, b, step in edges:
            if phase[a] + step > phase[b]:
                phase[b] = phase[a] + step
                changed = True
    stages: dict[int, set[dg.AssetKey]] = {}
    for k in order:
        stages.setdefault(phase[k], set()).add(k)
    return [Stage(p % 2 == 1, stages[p]) for p in sorted(stages)]


def _selected_parents(graph: BaseAssetGraph, key: dg.AssetKey, keys: set) -> set[dg.AssetKey]:
    """The nearest selected assets above ``key``, looking through unselected ones."""
    found: set[dg.AssetKey] = set()
    seen: set[dg.AssetKey] = set()
    stack = list(graph.get(key).parent_keys)
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        if parent in keys:
            found.add(parent)
        elif graph.has(parent):
            stack.extend(graph.get(parent).parent_keys)
    return found


def _cycles_with_a_step(nodes: list, edges: list[tuple]) -> set:
    """The nodes of the strongly connected components that have an edge with a step in them."""
    succ: dict = {n: [] for n in nodes}
    pred: dict = {n: [] for n in nodes}
    for a, b, _ in edges:
        succ[a].append(b)
        pred[b].append(a)
    # Kosaraju: finishing order on the graph, then components on the reversed graph
    finished, seen = [], set()
    for root in nodes:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            child = next((c for c in children if c not in seen), None)
            if child is None:
                stack.pop()
                finished.append(node)
            else:
                seen.add(child)
                stack.append((child, iter(succ[child])))
    component: dict = {}
    for root in reversed(finished):
        if root in component:
            continue
        component[root] = root
        stack = [root]
        while stack:
            for p in pred[stack.pop()]:
                if p not in component:
                    component[p] = root
                    stack.append(p)
    bad = {component[a] for a, b, step in edges if step and component[a] == component[b]}
    return {n for n in nodes if component[n] in bad}


def stage_run_settings(
    stage: Stage,
    owner: Mapping[dg.AssetKey, dg.AssetsDefinition],
    window: tuple[str, str] | None,
) -> tuple[dict, dict[str, str]]:
    """The extra run config and the tags of a stage's run.

    A partitioned run covers the window (one run over the range: the backfill policy is
    single-run); an unpartitioned run holding ``dbt_lake`` passes the window to dbt, which
    re-derives the incremental models over the days the partitions just covered.
    """
    if stage.partitioned:
        if window is None:
            raise ValueError("a partitioned run needs a partition window")
        return {}, {
            ASSET_PARTITION_RANGE_START_TAG: window[0],
            ASSET_PARTITION_RANGE_END_TAG: window[1],
        }
    if window is not None and any(owner[k].node_def.name == "dbt_lake" for k in stage.keys):
        config = {"events_from": window[0], "events_to": window[1]}
        return {"ops": {"dbt_lake": {"config": config}}}, {}
    return {}, {}


#: the job each stage runs as: dg.materialize's ephemeral job (the UI lists these runs as
#: ad-hoc materialisations)
RUN_JOB_NAME = "__ephemeral_asset_job__"


def materialize(
    select: str | None = None,
    partition: str | None = None,
    dbt_tests: bool = True,
    rebuild_damaged: bool = False,
    out: IO[str] | None = None,
    recent: Mapping[str, int] | None = None,
) -> MaterializeSummary:
    """Materialise the selected assets (default: all) over a partition window (default: every
    landed day), one run per stage of :func:`plan_stages`.

    ``dbt_tests=False`` leaves out the asset checks that are dbt data tests: dbt builds the
    selected models without them, in about half the time (the orchestrated runs never run dbt's
    unit tests: ``make test`` does). The checks
    the platform's own assets report (ingestion contracts, plan feasibility, model evaluation)
    still run. A quick re-build whose data the next full run tests.

    A damaged data file of the lake (:mod:`pipelines.lake_files`) stops the run before it
    starts; ``rebuild_damaged=True`` drops the tables it belongs to first, so this run rebuilds
    them (refused for tables nothing can rebuild: ops.*, the live stream's events).

    ``recent`` (asset group -> days) runs those groups' partitioned assets over the window's
    last days only (:func:`recent_stages`).

    Each stage prints its progress to ``out`` (default: standard output; pipelines/progress).
    """
    from pipelines.definitions import defs
    from pipelines.defs.transform.assets import DBT_ASSETS

    graph = defs.resolve_asset_graph()
    try:
        selection = dg.AssetSelection.from_string(select) if select else dg.AssetSelection.all()
        keys = selection.resolve(graph)
    except Exception as exc:  # Dagster raises several kinds for a bad selection string
        raise MaterializeError(f"invalid selection {select!r}: {exc}") from exc
    if not keys:
        raise MaterializeError(f"selection {select!r} matches no asset")
    assets = list(defs.assets or [])
    # a multi-asset that lands several datasets from one file is materialised whole; keys no
    # asset here defines (tables other tools write, e.g. ops.risk_review_decisions) are skipped
    owner = {key: a for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys}
    keys = {k for k in keys if k in owner}
    if not keys:
        raise MaterializeError(f"selection {select!r} matches no materialisable asset")
    keys = set().union(*(owner[k].keys if not owner[k].can_subset else {k} for k in keys))
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = recent_stages(graph, plan_stages(graph, keys, partitioned, owner), recent or {})
    window = parse_partition(partition) if partitioned else None  # fail before running anything
    if partitioned and window is None:
        raise MaterializeError("the landing zone is empty: run `ordertower simulate` first")
    # a damaged data file fails here, named, instead of deep inside a run (pipelines/lake_files)
    damage = find_damage()
    if damage and not rebuild_damaged:
        raise MaterializeError(describe(damage))
    if damage:
        try:
            dropped = drop_damaged(damage)
        except LakeDamaged as exc:
            raise MaterializeError(str(exc)) from exc
        print(f"dropped {', '.join(dropped)} (damaged files): this run rebuilds them", flush=True)
    summary = MaterializeSummary(assets=sorted(k.to_user_string() for k in keys))
    resources = defs.resources or {}
    inst = instance()
    for run_id in release_dead_runs(inst):
        print(f"released run {run_id}: its process died before it finished", flush=True)
    run_tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    dbt_checks = [check for a in DBT_ASSETS for check in a.check_keys]

    def run(selected: set[dg.AssetKey], extra_run_config: dict | None = None, **kwargs) -> None:
        try:
            selection = dg.AssetSelection.assets(*selected)
            if not dbt_tests:
                selection = selection - dg.AssetSelection.checks(*dbt_checks)
            # dg.materialize with one more logger: the progress lines (pipelines/progress.py)
            job_defs = dg.Definitions(
                jobs=[dg.define_asset_job(name=RUN_JOB_NAME, selection=selection)],
                assets=assets,
                resources=resources,
                loggers={"console": dg.colored_console_logger, "progress": progress_logger},
            )
            result = job_defs.resolve_job_def(RUN_JOB_NAME).execute_in_process(
                instance=inst,
                raise_on_error=False,
                # step events go to the run's event log (the UI); the console gets the
                # warnings and errors unless ORDERTOWER_LOG_LEVEL asks for more
                run_config={
                    "loggers": {
                        "console": {"config": {"log_level": get_settings().log_level}},
                        "progress": {},
                    },
                    **(extra_run_config or {}),
                },
                tags={**run_tags, **kwargs.pop("tags", {})},
                **kwargs,
            )
        except dg.DagsterError as exc:  # a definition problem, before any step ran
            raise MaterializeError(f"cannot start the run: {str(exc).splitlines()[0]}") from exc
        summary.runs.append(result.run_id)
        if not result.success:
            damage = lake_damage()  # a file damaged while the run read it: say which, not how
            if damage:
                raise MaterializeError(f"run {result.run_id} failed: {damage}")
            failures = [e for e in result.all_events if e.is_failure]
            detail = failures[0].message if failures else "see the run in the Dagster UI"
            raise MaterializeError(redact(f"run {result.run_id} failed: {detail}"))

    for index, stage in enumerate(stages, start=1):
        days = stage_window(stage, window)
        extra_run_config, stage_tags = stage_run_settings(stage, owner, days)
        if stage.partitioned and stage.days is None:
            summary.partition_range = window
        progress = StageProgress(
            index,
            len(stages),
            stage_title(graph, stage, days),
            len(stage.keys),
            out=out or sys.stdout,
        )
        progress.begin()
        follow(progress)
        try:
            run(stage.keys, extra_run_config=extra_run_config, tags=stage_tags)
        except MaterializeError:
            progress.finish(success=False)
            raise
        finally:
            follow(None)
        summary.stages.append(progress.finish(success=True))
    return summary


def stage_title(graph: BaseAssetGraph, stage: Stage, window: tuple[str, str] | None) -> str:
    """What a stage builds, for a person: its asset groups, and the days of a partitioned one."""
    groups = sorted({graph.get(k).group_name or "default" for k in stage.keys})
    title = ", ".join(groups[:4]) + (f" and {len(groups) - 4} more" if len(groups) > 4 else "")
    if stage.partitioned and window is not None:
        days = window[0] if window[0] == window[1] else f"{window[0]}..{window[1]}"
        title += f" ({days})"
    return title


#: tags every run ``ordertower materialize`` starts, so a later one can tell if it died
PID_TAG = "ordertower/pid"
HOST_TAG = "ordertower/host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def release_dead_runs(inst: dg.DagsterInstance) -> list[str]:
    """Fail the runs a killed ``ordertower materialize`` left behind, and free their slots.

    An in-process run whose process was killed (SIGKILL, OOM, a closed laptop) stays STARTED in
    the instance and keeps its ``lake_writer`` concurrency slot, so every later run would wait
    for that slot forever. Runs this command started carry their process id and host; one whose
    process no longer exists on this host is marked failed and its slots are freed.
    """
    released = []
    host = socket.gethostname()
    active = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    for run in inst.get_runs(filters=dg.RunsFilter(statuses=active)):
        pid, run_host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if not pid or run_host != host or _process_alive(int(pid)):
            continue
        inst.report_run_failed(
            run, message=f"ordertower materialize (pid {pid}) died before the run finished"
        )
        inst.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released
