"""The lake: readers work while a writer writes; the PostgreSQL catalog works where one runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import landing_factory as lf
import pytest

from ordertower import lake
from ordertower.settings import get_settings
from pipelines.ingest.runner import ingest_source, landed_partitions
from pipelines.ingest.sources import SOURCES

WRITER = """
import time
from ordertower import lake
con = lake.connect()
con.execute("create table if not exists raw.ticks (i integer, payload varchar)")
for i in range(40):
    con.execute("insert into raw.ticks select range, repeat('x', 200) from range(?, ? + 5000)", [i * 5000, i * 5000])
    time.sleep(0.02)
con.close()
"""


def test_readers_see_committed_snapshots_while_a_writer_writes(lake_home: Path):
    con = lake.connect()
    con.execute("create table raw.ticks (i integer, payload varchar)")
    con.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=os.environ.copy())
    counts = []
    try:
        while writer.poll() is None:
            reader = lake.connect(read_only=True)
            counts.append(reader.execute("select count(*) from raw.ticks").fetchone()[0])
            reader.close()
            time.sleep(0.05)
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert len(counts) >= 3
    assert counts == sorted(counts)  # never a torn or rolled-back view
    assert all(c % 5000 == 0 for c in counts)  # only whole committed inserts are visible
    final = lake.connect(read_only=True)
    assert final.execute("select count(*) from raw.ticks").fetchone()[0] == 200_000


def test_reader_without_a_lake_gets_a_clear_error(lake_home: Path):
    with pytest.raises(lake.LakeError, match="make demo"):
        lake.connect(read_only=True)


def _postgres_dsn() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
        ):
            return "host=127.0.0.1 port=5432 user=postgres"
    except Exception:
        return None


@pytest.mark.service
def test_postgres_catalog(lake_home: Path, monkeypatch: pytest.MonkeyPatch):
    base = _postgres_dsn()
    if base is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required under CI=true")
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    db = f"ordertower_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{base} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'create database "{db}"')
    try:
        monkeypatch.setenv("ORDERTOWER_CATALOG", "postgres")
        monkeypatch.setenv("ORDERTOWER_CATALOG_DSN", f"{base} dbname={db}")
        assert get_settings().ducklake_uri.startswith("ducklake:postgres:")
        landing = lake_home / "landing"
        lf.reference(landing)
        lf.clean_day(landing)
        con = lake.connect()
        for source in SOURCES:
            ingest_source(source, landed_partitions(source, landing), con, landing, "pg-run")
        con.close()
        # dbt finds the same catalog (the profile attaches the secret its plugin makes)
        from pipelines.cli import main

        assert main(["dbt", "run", "--select", "stg_oms__orders"]) == 0
        reader = lake.connect(read_only=True)
        assert reader.execute("select count(*) from raw.orders").fetchone()[0] == 3
        assert reader.execute("select count(*) from raw.carrier_events").fetchone()[0] == 5
        assert reader.execute("select count(*) from staging.stg_oms__orders").fetchone()[0] == 3
        reader.close()
        with psycopg.connect(f"{base} dbname={db}") as pg:  # the catalog really is in PostgreSQL
            tables = pg.execute(
                "select count(*) from information_schema.tables where table_name like 'ducklake_%'"
            ).fetchone()[0]
        assert tables > 5
    finally:
        with psycopg.connect(f"{base} dbname=postgres", autocommit=True) as admin:
            admin.execute(f'drop database if exists "{db}" with (force)')


def test_cli_dbt_with_the_catalog_unreachable_says_so_in_one_line(
    lake_home: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """The PostgreSQL catalog's server stopped: `ordertower dbt` says so in one line, without
    a traceback or the catalog's password, instead of starting dbt."""
    from pipelines.cli import main

    monkeypatch.setenv("ORDERTOWER_CATALOG", "postgres")
    monkeypatch.setenv("ORDERTOWER_CATALOG_DSN", "host=127.0.0.1 port=1 dbname=x password=Pw_42x")
    assert main(["dbt", "run", "--select", "stg_oms__orders"]) == 1
    err = capsys.readouterr().err
    assert "cannot attach the lake" in err and "needs the lake's catalog" in err
    assert "Traceback" not in err and "Pw_42x" not in err
    assert len(err.strip().splitlines()) == 1, err
