"""Fault: a corrupt Parquet file in the lake (a data file truncated, or overwritten in place).

Covers item 7's corrupt-file fault on the shared clean world (tests/fault_world.py):

* ``ordertower status`` and ``ordertower materialize`` stop with one paragraph that names the
  table and the file and says what to do; no Python traceback;
* every dashboard page shows that as an error message (AppTest, signed in as admin), never a
  traceback; each page reads a table with a damaged file (a raw table, a mart, the ops tables);
* ``ordertower materialize --rebuild-damaged`` drops the damaged tables, rebuilds them, and the
  lake equals the clean run again.

The damaged files are restored after each test (the world is shared).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth_support import app_as, open_page
from tests.dashboard_world import LAKE
from tests.fault_world import (
    SELECT,
    CleanWorld,
    at_home,
    clean_world,
    copy_world,
    differences,
    lake_checksums,
    ordertower,
)

pytestmark = pytest.mark.slow  # the shared world is a materialisation (a few minutes)

PAGES = (
    "tracking",
    "exceptions",
    "dispatch",
    "kpis",
    "carbon",
    "risk_review",
    "data_quality",
    "audit_log",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> CleanWorld:
    """A private copy of the shared world: these tests damage files and flush tables, and
    other modules copy the shared world while they run."""
    shared = clean_world(tmp_path_factory)
    home = tmp_path_factory.mktemp("faults") / "home"
    copy_world(shared, home)
    return CleanWorld(home, shared.checksums)


def _files(home: Path, table: str) -> list[str]:
    from ordertower import lake

    schema, name = table.split(".")
    with at_home(home):
        con = lake.connect(read_only=True)
    try:
        rows = con.execute(
            "select data_file from ducklake_list_files('lake', ?, schema => ?)", [name, schema]
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


@contextlib.contextmanager
def damaged(home: Path, *tables: str) -> Iterator[dict[str, str]]:
    """Damage one data file of each table (the first truncated to a third, the others
    overwritten in place with bytes of the same size); restore them afterwards."""
    saved: dict[str, bytes] = {}
    chosen: dict[str, str] = {}
    try:
        for i, table in enumerate(tables):
            files = _files(home, table)
            assert files, f"{table} has no data file to damage"
            path = files[0]
            saved[path] = Path(path).read_bytes()
            chosen[table] = path
            size = len(saved[path])
            Path(path).write_bytes(
                saved[path][: size // 3] if i == 0 else os.urandom(size)  # truncated / garbage
            )
        yield chosen
    finally:
        for path, content in saved.items():
            Path(path).write_bytes(content)


def _one_paragraph_error(stderr: str, command: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"ordertower {command}: the lake is damaged: "), stderr[-2000:]
    return last


def test_status_and_materialize_name_the_damaged_file(flushed: CleanWorld) -> None:
    world = flushed  # ops.ingest_runs has a data file to damage
    with damaged(world.home, "raw.orders", "marts.fct_orders") as files:
        status = ordertower(world.home, "status")
        assert status.returncode == 1
        message = _one_paragraph_error(status.stderr, "status")
        # the paragraph names the first damaged file, every damaged table and what to do
        assert files["marts.fct_orders"] in message and "raw.orders" in message
        assert "restore" in message and "--rebuild-damaged" in message
        # stdout lists every damaged file, with its table and what is wrong with it
        listed = sorted(line for line in status.stdout.splitlines() if line.startswith("damaged: "))
        assert len(listed) == 2
        assert files["marts.fct_orders"] in listed[0] and "no PAR1 magic bytes" in listed[0]
        assert files["raw.orders"] in listed[1] and "truncated" in listed[1]

        run = ordertower(world.home, "materialize", *SELECT)
        assert run.returncode == 1
        message = _one_paragraph_error(run.stderr, "materialize")
        assert files["marts.fct_orders"] in message and "--rebuild-damaged" in message
        assert "materialised" not in run.stdout

    # a table nothing can rebuild (ops history, the stream's own events) is never dropped
    with damaged(world.home, "ops.ingest_runs") as files:
        run = ordertower(world.home, "materialize", *SELECT, "--rebuild-damaged")
        assert run.returncode == 1
        message = _one_paragraph_error(run.stderr, "materialize")
        assert files["ops.ingest_runs"] in message and "only a backup" in message


@pytest.fixture
def flushed(world: CleanWorld) -> CleanWorld:
    """The world with the ops tables' inlined rows written out as Parquet files (what a
    long-running lake has), so the data-quality page reads files too."""
    from ordertower import audit, lake

    with at_home(world.home):
        assert audit.append(None, "sign_in", detail="fault test")  # the audit log has a row
        con = lake.connect()
    try:
        con.execute("call ducklake_flush_inlined_data('lake')")
    finally:
        con.close()
    return world


@pytest.mark.usefixtures("fresh_streamlit_caches")
def test_every_page_shows_a_clear_error(flushed: CleanWorld) -> None:
    from ordertower import lake

    with at_home(flushed.home):
        con = lake.connect(read_only=True)
        order = con.execute("select min(order_id) from marts.fct_orders").fetchone()[0]
        con.close()
        tables = ("raw.orders", "marts.fct_orders", "ops.ingest_runs", "ops.audit_log")
        with damaged(flushed.home, *tables) as files:
            for page in PAGES:
                at = app_as("admin", timeout=120)
                if page == "tracking":
                    at.query_params["order"] = order
                open_page(at, page)
                assert not at.exception, (page, [e.value for e in at.exception])
                errors = [e.value for e in at.error]
                assert len(errors) == 1, (page, errors, [i.value for i in at.info])
                assert errors[0].startswith("A data file of the lake is damaged"), (page, errors)
                assert any(path in errors[0] for path in files.values()), (page, errors)
                assert "Traceback" not in errors[0]
                assert "--rebuild-damaged" in errors[0]


#: What the damaged tables feed: the orders' ingestion and the models downstream of it (the
#: rest of the lake is untouched, and compared below with the clean lake all the same).
REBUILT = ["--select", f"({LAKE}) and key:raw/orders+", "--no-dbt-tests"]


def test_rebuild_damaged_restores_the_clean_lake(world: CleanWorld) -> None:
    with damaged(world.home, "raw.orders", "marts.fct_orders"):
        run = ordertower(world.home, "materialize", *REBUILT, "--rebuild-damaged")
        assert run.returncode == 0, run.stderr[-3000:]
        assert "dropped marts.fct_orders, raw.orders" in run.stdout
        assert differences(lake_checksums(world.home), world.checksums) == []
        status = ordertower(world.home, "status")
        assert status.returncode == 0, status.stderr[-2000:]
