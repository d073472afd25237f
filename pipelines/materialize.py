"""Materialise the project's assets in-process (what ``ordertower materialize`` runs).

Unpartitioned reference assets run first, then the daily-partitioned ones over a partition
range in a single run (their backfill policy is single-run), so a 90-day world lands in one pass
instead of 90 runs, then the unpartitioned assets built on them (the dbt models). Runs are recorded in the Dagster instance under ``DAGSTER_HOME`` and show up in the
UI like any other run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from ordertower.settings import get_settings
from pipelines.defs.partitions import daily_partitions
from pipelines.ingest.runner import landed_partitions
from pipelines.ingest.sources import SOURCES


class MaterializeError(RuntimeError):
    """A materialisation could not run or failed (message says which step and why)."""


@dataclass
class MaterializeSummary:
    runs: list[str] = field(default_factory=list)
    partition_range: tuple[str, str] | None = None
    assets: list[str] = field(default_factory=list)


DAGSTER_YAML = """\
# Written by Order Control Tower on first use; edit freely.
telemetry:
  enabled: false
concurrency:
  pools:
    # lake_writer: the embedded SQLite catalog takes one writer at a time
    default_limit: 1
"""


def ensure_dagster_home() -> str:
    """Create DAGSTER_HOME with its dagster.yaml (no telemetry, one lake writer at a time)."""
    home = get_settings().dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
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


def plan_stages(graph, keys: set, partitioned: set, owner: dict) -> list[tuple[bool, set]]:
    """The runs to materialise ``keys`` in: each run holds one kind (daily-partitioned or not).

    A key's phase is the number of changes of kind on the way down to it from the selection's
    roots (through unselected assets too), so a run starts only once everything it reads was
    built by an earlier run: reference data, the partitioned ingest, dbt, the partitioned risk
    features, the model, the partitioned scores, the marts on them. All keys of one
    multi-asset share the latest phase among them (one dbt invocation builds them together).
    Unpartitioned roots run before partitioned ones (the reference data the ingest reads).
    """
    order = [k for k in graph.toposorted_asset_keys if k in keys]

    def nearest_selected(k) -> set:
        found, stack, seen = set(), list(graph.get(k).parent_keys), set()
        while stack:  # look through unselected assets to the selected ones above them
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if a in keys:
                found.add(a)
            else:
                stack.extend(graph.get(a).parent_keys)
        return found

    parents = {k: nearest_selected(k) for k in order}
    # phases alternate kinds: even = unpartitioned, odd = partitioned
    phase: dict = {}
    changed = True
    while changed:
        changed = False
        for k in order:
            kind = k in partitioned
            lower = max(
                [phase.get(a, 0) + ((a in partitioned) != kind) for a in parents[k]]
                + [phase.get(g, 0) for g in owner[k].keys & keys]
                + [0]
            )
            p = lower if lower % 2 == int(kind) else lower + 1
            if phase.get(k) != p:
                phase[k] = p
                changed = True
    stages: dict[int, set] = {}
    for k in order:
        stages.setdefault(phase[k], set()).add(k)
    return [(p % 2 == 1, stages[p]) for p in sorted(stages)]


def materialize(select: str | None = None, partition: str | None = None) -> MaterializeSummary:
    from pipelines.definitions import defs

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
    owner = {key: a for a in assets for key in a.keys}
    keys = {k for k in keys if k in owner}
    if not keys:
        raise MaterializeError(f"selection {select!r} matches no materialisable asset")
    keys = set().union(*(owner[k].keys if not owner[k].can_subset else {k} for k in keys))
    partitioned = {k for k in keys if graph.get(k).partitions_def is not None}
    stages = plan_stages(graph, keys, partitioned, owner)
    window = parse_partition(partition) if partitioned else None  # fail before running anything
    if partitioned and window is None:
        raise MaterializeError("the landing zone is empty: run `ordertower simulate` first")
    summary = MaterializeSummary(assets=sorted(k.to_user_string() for k in keys))
    resources = defs.resources or {}
    inst = instance()
    for run_id in release_dead_runs(inst):
        print(f"released run {run_id}: its process died before it finished", flush=True)
    run_tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}

    def run(selected: set[dg.AssetKey], extra_run_config: dict | None = None, **kwargs) -> None:
        try:
            result = dg.materialize(
                assets,
                selection=list(selected),
                resources=resources,
                instance=inst,
                raise_on_error=False,
                # step events go to the run's event log (the UI); the console gets INFO and up
                run_config={
                    "loggers": {"console": {"config": {"log_level": get_settings().log_level}}},
                    **(extra_run_config or {}),
                },
                tags={**run_tags, **kwargs.pop("tags", {})},
                **kwargs,
            )
        except dg.DagsterError as exc:  # a definition problem, before any step ran
            raise MaterializeError(f"cannot start the run: {str(exc).splitlines()[0]}") from exc
        summary.runs.append(result.run_id)
        if not result.success:
            failures = [e for e in result.all_events if e.is_failure]
            detail = failures[0].message if failures else "see the run in the Dagster UI"
            raise MaterializeError(f"run {result.run_id} failed: {detail}")

    for stage_partitioned, stage in stages:
        if stage_partitioned:
            summary.partition_range = window
            run(
                stage,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: window[0],
                    ASSET_PARTITION_RANGE_END_TAG: window[1],
                },
            )
            continue
        # dbt re-derives the incremental models over the window the partitions just covered
        window_config = (
            {"ops": {"dbt_lake": {"config": {"events_from": window[0], "events_to": window[1]}}}}
            if window is not None and any(owner[k].node_def.name == "dbt_lake" for k in stage)
            else {}
        )
        run(stage, extra_run_config=window_config)
    return summary


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


def _has_partitioned_ancestor(graph, key: dg.AssetKey) -> bool:
    seen: set[dg.AssetKey] = set()
    stack = list(graph.get(key).parent_keys)
    while stack:
        parent = stack.pop()
        if parent in seen or not graph.has(parent):
            continue
        seen.add(parent)
        if graph.get(parent).partitions_def is not None:
            return True
        stack.extend(graph.get(parent).parent_keys)
    return False
