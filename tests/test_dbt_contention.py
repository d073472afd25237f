"""A dbt build that meets the lake's catalog held by another writer (the live stream,
maintenance) waits its turn instead of failing the materialisation.

dbt-duckdb does not retry a locked SQLite catalog; the dbt step asks Dagster for a step retry
when every failed node failed on the lock, and fails as before on anything else.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from pipelines.defs.transform.assets import _locked_only
from tests.fault_world import ORDERTOWER, at_home, clean_world, copy_world, world_env
from tests.shared_worlds import catalog_held

#: one dbt model: the lock has to meet the dbt step, not the rest of a materialisation
MODEL = "key:marts/dim_warehouse"
LOCKED = (
    "Runtime Error in model dim_warehouse: Failed to query most recent snapshot for DuckLake: "
    'Failed to prepare query "SELECT ...": database is locked'
)


def test_only_a_build_that_failed_on_the_lock_is_retried() -> None:
    error = "The dbt CLI process with command `dbt build` failed with exit code `1`."
    assert _locked_only([error, LOCKED])
    assert _locked_only([error, LOCKED, LOCKED.replace("locked", "busy")])
    # a real failure beside the lock: fail as it is (a retry would fail the same way)
    assert not _locked_only([error, LOCKED, "Binder Error: column x not found"])
    assert not _locked_only([error, "Got 3 results, configured to fail if != 0"])
    # dbt failed before any node ran: only its own message tells
    assert not _locked_only([error])
    assert _locked_only([error + "\n\nErrors parsed from dbt logs:\n" + LOCKED])


@pytest.mark.slow  # the shared world is a materialisation (a few minutes)
def test_a_dbt_build_that_meets_a_held_catalog_waits_and_lands(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    copy_world(clean_world(tmp_path_factory), home)
    log = tmp_path / "materialize.log"
    run: subprocess.Popen | None = None
    try:
        with catalog_held(home / "lake" / "catalog.sqlite"):
            with log.open("w") as out:
                run = subprocess.Popen(
                    [ORDERTOWER, "materialize", "--select", MODEL, "--no-dbt-tests"],
                    env=world_env(home),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + 600
            while "building again" not in log.read_text() and run.poll() is None:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
            assert "building again" in log.read_text(), log.read_text()[-3000:]
        # the other writer is done: the next attempt lands
        assert run.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if run is not None and run.poll() is None:
            run.kill()
    text = log.read_text()
    assert "database is locked" in text or "building again" in text
    from ordertower import lake

    with at_home(home):
        con = lake.connect(read_only=True)
    try:
        assert con.execute("select count(*) from marts.dim_warehouse").fetchone()[0] > 0
    finally:
        con.close()
