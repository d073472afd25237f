"""Fault: ``ordertower materialize`` killed with SIGKILL (kill -9) part-way, then run again.

Covers item 7's first fault: runs are killed at three points (while ingestion lands the
partitions, while dbt builds the staging and intermediate models, while it writes the marts),
one after another on the same lake, each after a delay drawn from its own seed, and the lake is
then materialised to the end; it then equals a CLEAN run of
the same input (tests/fault_world.py): the same row count and the same content checksum of
every column of every raw, quarantine, staging seed, intermediate and mart table, except the
lineage and wall-clock columns that legitimately differ between runs (``VOLATILE``). The clean
run is built once per session and shared. Also: a run left STARTED by a dead process no longer
blocks the ``lake_writer`` pool.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fault_world import (
    ORDERTOWER,
    SELECT,
    CleanWorld,
    clean_world,
    differences,
    fresh_copy_of_landing,
    lake_checksums,
    materialize,
    world_env,
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> CleanWorld:
    return clean_world(tmp_path_factory)


def _raw_file_written(home: Path, log: str) -> bool:
    return any((home / "lake" / "data" / "raw").rglob("*.parquet"))


#: Where the run is killed: (what is seen first, the seconds after it drawn from the seed).
KILL_POINTS: dict[str, tuple[Callable[[Path, str], bool], tuple[float, float]]] = {
    # the first partitioned data file of raw.* is on disk: ingestion is landing
    "ingest": (_raw_file_written, (0.0, 2.0)),
    # dbt has started on the lake (staging views, intermediate tables, seeds)
    "dbt": (lambda home, log: "dbt_lake - Running dbt command" in log, (3.0, 12.0)),
    # dbt writes a mart table
    "marts": (lambda home, log: "START sql table model marts." in log, (0.0, 2.0)),
}


def _kill_during(home: Path, point: str, seed: int) -> bool:
    """Start the materialisation, SIGKILL its process group at ``point``; True if it was
    still running then."""
    seen, (low, high) = KILL_POINTS[point]
    delay = random.Random(seed).uniform(low, high)
    log_path = home / f"killed-{point}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [ORDERTOWER, "materialize", *SELECT],
            # dbt's lines (the kill points) are Dagster's INFO log
            env=world_env(home, ORDERTOWER_LOG_LEVEL="INFO"),
            start_new_session=True,  # the kill takes dbt's subprocess with it
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            if seen(home, log_path.read_text(errors="replace")):
                break
            time.sleep(0.2)
        time.sleep(delay)
        running = proc.poll() is None
        if running:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return running


@pytest.mark.slow
def test_runs_killed_at_each_point_then_a_rerun_equal_a_clean_run(
    clean: CleanWorld, tmp_path: Path
) -> None:
    """Three runs in a row on one lake, each killed at its own point after a delay drawn from
    its own seed, each starting from whatever the killed one before it left; then a run to the
    end. A kill on top of a killed run is the harder case, and one lake for all three spares
    CI two complete runs."""
    home = tmp_path / "home"
    fresh_copy_of_landing(clean, home)
    for seed, point in enumerate(KILL_POINTS, start=1):
        assert _kill_during(home, point, seed), f"the run finished before the kill at {point!r}"
        if seed > 1:
            log = (home / f"killed-{point}.log").read_text(errors="replace")
            assert "released run" in log, f"the run killed at {point!r} kept its slot taken"

    rerun = materialize(home)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "released run" in rerun.stdout, "the killed run's lake_writer slot was not freed"
    got = lake_checksums(home)
    assert differences(got, clean.checksums) == []
    # and the re-run is a whole lake, not an equally empty one
    assert got["raw.orders"]["rows"] > 0 and got["marts.fct_orders"]["rows"] > 0


def test_a_dead_materialize_run_is_failed_and_frees_its_slot(tmp_path: Path):
    """A run left STARTED by a killed process no longer blocks the lake_writer pool."""
    import socket

    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun

    from pipelines.materialize import HOST_TAG, PID_TAG, release_dead_runs

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    inst = dg.DagsterInstance.local_temp(str(tmp_path))
    storage = inst.event_log_storage
    storage.set_concurrency_slots("lake_writer", 1)
    tags = {PID_TAG: str(dead.pid), HOST_TAG: socket.gethostname()}
    orphan = inst.add_run(DagsterRun(job_name="j", status=dg.DagsterRunStatus.STARTED, tags=tags))
    alive_tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    alive = inst.add_run(
        DagsterRun(job_name="j", status=dg.DagsterRunStatus.STARTED, tags=alive_tags)
    )
    assert storage.claim_concurrency_slot("lake_writer", orphan.run_id, "step").is_claimed
    assert not storage.claim_concurrency_slot("lake_writer", alive.run_id, "step").is_claimed

    assert release_dead_runs(inst) == [orphan.run_id]
    assert inst.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE
    assert inst.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    assert storage.claim_concurrency_slot("lake_writer", alive.run_id, "step").is_claimed
    inst.dispose()
