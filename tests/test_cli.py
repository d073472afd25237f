"""The ordertower command line: clear errors, exit codes, and the demo path on a small world."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ordertower import lake
from ordertower.settings import CONTRACTS_DIR
from pipelines.cli import main
from tests.dashboard_world import BUILD_OUTPUT, lake_copy, shared_lake
from tests.shared_worlds import at_home

ORDERTOWER = str(Path(sys.executable).parent / "ordertower")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ORDERTOWER, *args], capture_output=True, text=True, timeout=300)


def test_sql_without_a_lake_fails_with_one_clear_line(lake_home: Path):
    result = _run("sql", "select 1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "make demo" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORDERTOWER_LOG_LEVEL", "LOUD"),
        ("ORDERTOWER_CATALOG", "oracle"),
        ("ORDERTOWER_CONTRACT_ENGINE", "pandas"),
        ("ORDERTOWER_ROUTING_WORKERS", "two"),
        ("ORDERTOWER_DISPATCH_WORKERS", "0"),
        ("ORDERTOWER_INGEST_WORKERS", "0"),
        ("ORDERTOWER_MAX_RECORD_BYTES", "1.5"),
        ("ORDERTOWER_LAKE_RETENTION_DAYS", "nan"),
        ("ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS", "-1"),
    ],
)
def test_a_bad_setting_is_one_clear_line(lake_home: Path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    for args in (["status"], ["materialize", "--select", "group:ingest"]):
        result = _run(*args)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert variable in result.stderr and repr(value) in result.stderr


def test_sql_reads_the_lake_and_nothing_else(lake_writer, tmp_path: Path):
    lake_writer.execute("create table raw.sql_probe as select range as n from range(3)")
    lake_writer.close()
    result = _run("sql", "select count(*) as n from raw.sql_probe", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"n": 3}]
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    for query in (
        f"select * from read_csv('{outside}')",
        f"copy (select 1) to '{tmp_path / 'copied.csv'}'",
        f"attach '{tmp_path / 'other.db'}'",
        "set autoinstall_known_extensions = true",
        "install httpfs",
        "load httpfs",
    ):
        result = _run("sql", query)
        assert result.returncode == 1 and "query failed" in result.stderr, query
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "copied.csv").exists() and not (tmp_path / "other.db").exists()


def test_bad_arguments_fail_cleanly(lake_home: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--orders", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert main(["materialize", "--partition", "2026-02-30"]) == 1
    assert "is not a day" in capsys.readouterr().err


def test_contracts_lint_and_diff_exit_codes(tmp_path: Path, capsys):
    assert main(["contracts", "lint"]) == 0
    old = CONTRACTS_DIR / "reviews.yaml"
    new = tmp_path / "reviews.yaml"
    new.write_text(old.read_text().replace("{value: phone}", "{value: phone}, {value: social}"))
    assert main(["contracts", "diff", str(old), str(new)]) == 0
    new.write_text(old.read_text().replace(", {value: phone}", ""))
    assert main(["contracts", "diff", str(old), str(new)]) == 1
    assert "BREAKING" in capsys.readouterr().out
    assert main(["contracts", "diff", str(old), str(tmp_path / "missing.yaml")]) == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: [unclosed")
    assert main(["contracts", "lint", str(broken)]) == 1


def _assert_dbt_built_without_its_tests() -> None:
    """--no-dbt-tests: the dbt models were materialised and none of dbt's data tests ran; the
    ingestion's own checks (contract, conservation) did."""
    import dagster as dg

    from pipelines.defs.transform.assets import DBT_ASSETS
    from pipelines.materialize import instance

    inst = instance()
    runs = [r.dagster_run.run_id for r in inst.get_run_records()]
    built = {
        e.dagster_event.asset_key
        for run in runs
        for e in inst.all_logs(run, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }
    checked = {
        e.dagster_event.event_specific_data.asset_check_key
        for run in runs
        for e in inst.all_logs(run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    }
    assert dg.AssetKey(["marts", "fct_orders"]) in built
    assert not checked & {check for a in DBT_ASSETS for check in a.check_keys}
    assert {check.asset_key.path[0] for check in checked} == {"raw"}


@pytest.mark.slow
def test_demo_path_on_a_small_world(tmp_path_factory: pytest.TempPathFactory, capsys):
    """simulate -> materialize -> every raw table non-empty -> sql answers -> re-run is stable.

    The world is the run's lake (tests/dashboard_world.py: three weeks simulated, then the lake
    materialised without the ML assets and without dbt's data tests, which test_marts runs,
    with the PII test), built once for every module that reads it: its console output and
    Dagster history are read here, and the writes below go to a copy."""
    source = shared_lake(tmp_path_factory)
    # a line per stage with its counts and time; dbt's own log stays out of the console
    out = (source.parent / BUILD_OUTPUT).read_text()
    stage = r"^\[(\d)/(\d)\] "
    assert re.search(stage + r"ingest \(\S+\.\.\S+\): done in .* records landed", out, re.M), out
    assert re.search(stage + r".*: done in .*\(\d+/\d+ assets\)$", out, re.M), out
    assert "START sql" not in out and "Running with dbt" not in out
    with at_home(source):
        _assert_dbt_built_without_its_tests()
    with at_home(lake_copy(tmp_path_factory, "cli_world")):
        _the_copied_lake_answers_and_a_rerun_is_stable(capsys)


def _the_copied_lake_answers_and_a_rerun_is_stable(capsys) -> None:
    con = lake.connect(read_only=True)
    raw = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
        ).fetchall()
    ]
    counts = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in raw}
    con.close()
    simulated = {
        t: n
        for t, n in counts.items()
        if not t.startswith("olist_") and t != "carrier_events_stream"
    }
    assert len(simulated) == 15 and all(simulated.values()), counts
    # the live stream's table exists beside the batch one (the staging view unions both), empty
    assert counts["carrier_events_stream"] == 0
    # Olist, the second source system, was not landed: its tables exist and are empty
    assert [n for t, n in counts.items() if t.startswith("olist_")] == [0] * 5
    capsys.readouterr()
    assert main(["sql", "select count(*) as n from raw.orders", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == counts["orders"]
    # re-ingesting a range replaces it, and one dataset of a multi-asset selects the whole
    # multi-asset (orders + order_lines); a day's every feed re-landed with dbt's re-derivation:
    # the daily job run twice in test_incremental_marts
    assert (
        main(
            ["materialize", "--select", "key:raw/orders", "--partition", "2026-08-23...2026-08-25"]
        )
        == 0
    )
    con = lake.connect(read_only=True)
    again = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in raw}
    status = con.execute(
        "select count(*) from ops.ingest_status where received <> landed + quarantined"
    ).fetchone()[0]
    con.close()
    assert again == counts
    assert status == 0
