"""Lake upkeep (pipelines/maintenance.py): fewer snapshots and files, the same data, time travel
within the retention, idempotent, safe beside a live stream writer; the Dagster job and its pool;
the stream's duplicate check bounded by its window."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ordertower.lake import connect
from pipelines.bench import _week_events, land_prevalidated
from pipelines.maintenance import META, Policy, lake_stats, maintain
from pipelines.stream.land import StreamLander

T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
#: keep everything for a week, thin every stream snapshot older than now, delete at once
AGGRESSIVE = Policy(
    retention=timedelta(days=7), dense=timedelta(0), grace=timedelta(0), bucket=timedelta(days=1)
)


def _stream_lake(batches: int = 12, start: int = 0) -> None:
    """``batches`` micro-batches; every other one large enough to become its own Parquet file."""
    con = connect(inline_rows=10)
    try:
        lander = StreamLander(con, "test.maintenance")
        next_id = start
        for k in range(batches):
            n = 20 if k % 2 else 5
            land_prevalidated(lander, _week_events(next_id, n), T0 + timedelta(minutes=k))
            next_id += n
    finally:
        con.close()


def _checksums(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Row count and a content digest of every table but the maintenance log itself."""
    tables = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_catalog = 'lake' and table_type = 'BASE TABLE' "
        "and table_name <> 'lake_maintenance' order by 1"
    ).fetchall()
    out = {}
    for (name,) in tables:
        out[name] = con.execute(
            f"select count(*), md5(coalesce(string_agg(cast(t as varchar), '|' "
            f"order by cast(t as varchar)), '')) from {name} t"
        ).fetchone()
    return out


def _snapshot_ids(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [
        r[0]
        for r in con.execute(
            f"select snapshot_id from {META}.ducklake_snapshot order by 1"
        ).fetchall()
    ]


def test_maintenance_merges_files_thins_snapshots_and_keeps_every_row(lake_home: Path):
    _stream_lake()
    with connect() as con:
        before, sums = lake_stats(con), _checksums(con)
    assert before["data_files"] >= 6 and before["inlined_rows"] > 0

    report = maintain("full", policy=AGGRESSIVE)

    assert report.status == "ok"
    with connect() as con:
        after, sums_after = lake_stats(con), _checksums(con)
        stream_files = con.execute(
            f"select count(*) from {META}.ducklake_data_file f join {META}.ducklake_table t "
            "using (table_id) where t.table_name = 'carrier_events_stream' "
            "and f.end_snapshot is null"
        ).fetchone()[0]
    assert sums_after == sums  # same rows, same content, in every table
    assert sums["raw.carrier_events_stream"][0] == 6 * 5 + 6 * 20
    # twelve batch snapshots in one (day-long) bucket whose last snapshot is the flush's
    assert report.steps["thinned_snapshots"] == 12
    # plus the flush's, the merges' and the clean-up's own commits
    assert after["snapshots"] <= before["snapshots"] - 12 + 5
    assert stream_files == 1  # six batch files and the inlined rows merged into one
    # the files merged away are deleted by the next pass, past the grace period
    assert report.steps["deleted_files"] == 0 and after["scheduled_for_deletion"] >= 6
    again = maintain("full", policy=AGGRESSIVE, record=False)
    assert again.steps["deleted_files"] >= 6
    assert again.after["files_on_disk"] == again.after["data_files"] + again.after["delete_files"]
    with connect(read_only=True) as con:
        logged = con.execute(
            "select status, snapshots_before, snapshots_after from ops.lake_maintenance"
        ).fetchall()
    assert logged == [("ok", before["snapshots"], report.after["snapshots"])]


def test_time_travel_within_the_retention_still_works(lake_home: Path):
    _stream_lake(batches=6)
    with connect() as con:
        rows = con.execute(
            f"select snapshot_id, cast(snapshot_time as timestamptz) from {META}.ducklake_snapshot "
            "order by 1"
        ).fetchall()
        keep_from, keep_at = rows[-4]
        counts = {
            sid: con.execute(
                f"select count(*) from raw.carrier_events_stream at (version => {sid})"
            ).fetchone()[0]
            for sid, _ in rows[-4:]
        }
    # "now" is a week after snapshot keep_from: every older snapshot falls out of the retention
    policy = Policy(timedelta(days=7), timedelta(days=7), timedelta(0))
    report = maintain("light", policy=policy, now=keep_at + timedelta(days=7, microseconds=-1))
    assert report.steps["expired_snapshots"] == len(rows) - 4
    with connect() as con:
        assert _snapshot_ids(con)[0] == keep_from
        for sid, n in counts.items():
            assert (
                con.execute(
                    f"select count(*) from raw.carrier_events_stream at (version => {sid})"
                ).fetchone()[0]
                == n
            )
        with pytest.raises(duckdb.Error):
            con.execute(f"select count(*) from raw.carrier_events at (version => {rows[-5][0]})")


def test_only_snapshots_the_stream_wrote_are_thinned(lake_home: Path):
    _stream_lake(batches=4)
    with connect() as con:
        con.execute("create table ops.audit_probe (n integer)")
        con.execute("insert into ops.audit_probe values (1)")
        kept = _snapshot_ids(con)[-2:]  # the table's creation and an audited-like write
    _stream_lake(batches=4, start=1000)
    maintain("light", policy=AGGRESSIVE, record=False)
    with connect() as con:
        remaining = _snapshot_ids(con)
        assert set(kept) <= set(remaining)
        changes = dict(
            con.execute(
                f"select snapshot_id, changes_made from {META}.ducklake_snapshot_changes"
            ).fetchall()
        )
    stream_only = [s for s in remaining if "inlined_insert" in (changes.get(s) or "")]
    # of eight stream batches one is left: the last of its (day-long) bucket
    assert len(stream_only) <= 1


def test_maintenance_is_idempotent_and_a_dry_run_changes_nothing(lake_home: Path):
    _stream_lake()
    dry = maintain("full", dry_run=True, policy=AGGRESSIVE)
    assert dry.status == "dry run" and dry.steps["thinned_snapshots"] >= 10
    with connect() as con:
        assert lake_stats(con) == dry.before
    first = maintain("full", policy=AGGRESSIVE, record=False)
    with connect() as con:
        sums = _checksums(con)
    second = maintain("full", policy=AGGRESSIVE, record=False)  # deletes what first merged away
    third = maintain("full", policy=AGGRESSIVE, record=False)
    assert first.steps["merged_files"] > 0 and second.steps["deleted_files"] > 0
    for step in ("flush_rows", "expired_snapshots", "merged_files", "deleted_files"):
        assert second.steps[step] == 0 or step == "deleted_files", step
        assert third.steps[step] == 0, step
    # only the earlier passes' own commits (merges) are left to thin
    assert second.steps["thinned_snapshots"] <= 4 and third.steps["thinned_snapshots"] <= 1
    assert third.after["data_files"] == second.after["data_files"] == first.after["data_files"]
    with connect() as con:
        assert _checksums(con) == sums


def test_the_stream_dedup_looks_back_only_over_its_window(lake_home: Path, monkeypatch):
    monkeypatch.setenv("ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS", "14")
    con = connect()
    try:
        lander = StreamLander(con, "test.window")
        first = land_prevalidated(lander, _week_events(0, 3), T0)
        again = land_prevalidated(lander, _week_events(0, 3), T0 + timedelta(days=13))
        late = land_prevalidated(lander, _week_events(1, 1), T0 + timedelta(days=15))
        stored = con.execute(
            "select event_id, count(*) from raw.carrier_events_stream group by 1 order by 1"
        ).fetchall()
    finally:
        con.close()
    assert (first.landed, again.landed, again.duplicates) == (3, 0, 3)
    # a copy older than the window lands again; fct_tracking_events keeps the first (by event_id)
    assert (late.landed, late.duplicates) == (1, 0)
    assert stored == [("wk0", 1), ("wk1", 2), ("wk2", 1)]


WRITER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from pipelines.stream.consumer import StreamConsumer
    from pipelines.stream.land import Delivery

    def body(i):
        return json.dumps({"msg_id": f"cw{i}", "event": "tracking_update",
            "carrier": "swiftparcel", "tracking_number": f"SPC{i // 4}",
            "checkpoint": {"tag": "InTransit", "subtag": "InTransit_001",
                "checkpoint_time": "2026-09-01T10:00:00+02:00", "message": "In transit",
                "location": {"city": "Lyon", "country_iso2": "FR", "lat": 45.76, "lon": 4.84}}}
        ).encode()

    batches, size = int(sys.argv[1]), int(sys.argv[2])
    consumer = StreamConsumer(batch_size=size)
    for b in range(batches):
        # each batch re-sends half of the previous one, as a redelivery would
        ids = list(range(b * size - size // 2 if b else 0, (b + 1) * size))
        consumer._land([Delivery(body(i), "swiftparcel", "parcel_webhook_json",
                                 datetime.now(UTC)) for i in ids])
        consumer._compact() if b % 3 == 2 else None
    consumer.close_lake()
    print(json.dumps(consumer.stats.as_dict()))
    """
)


@pytest.mark.slow
def test_maintenance_beside_a_live_stream_writer_loses_nothing(lake_home: Path):
    """The consumer's own landing and retry code in another process while maintenance runs in a
    loop: every event stored exactly once, every table's content intact."""
    batches, size = 10, 20
    _stream_lake(batches=2, start=10_000)  # the lake and the stream tables exist
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(batches), str(size)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    passes = 0
    while writer.poll() is None or passes < 2:
        maintain("light" if passes % 2 else "full", policy=Policy(
            timedelta(days=7), timedelta(0), timedelta(minutes=60), timedelta(days=1)))  # fmt: skip
        passes += 1
        time.sleep(2.0)  # passes back to back: far denser than the hourly schedule
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err[-2000:]
    with connect() as con:
        ids = con.execute(
            "select event_id, count(*) from raw.carrier_events_stream "
            "where event_id like 'cw%' group by 1"
        ).fetchall()
    assert len(ids) == batches * size and {n for _, n in ids} == {1}
    assert passes >= 2


def test_the_dagster_job_takes_the_lake_writer_pool_and_is_scheduled():
    from pipelines.definitions import defs
    from pipelines.defs.resources import LAKE_WRITER_POOL

    repo = defs.get_repository_def()
    job = repo.get_job("lake_maintenance")
    assert {n.definition.pool for n in job.graph.node_dict.values()} == {LAKE_WRITER_POOL}
    schedules = {s.name: s for s in repo.schedule_defs if s.job_name == "lake_maintenance"}
    assert set(schedules) == {"lake_maintenance_nightly", "lake_maintenance_hourly"}
    modes = {
        name: s.evaluate_tick(
            __import__("dagster").build_schedule_context(scheduled_execution_time=T0)
        )
        .run_requests[0]
        .run_config["ops"]["maintain_lake"]["config"]["mode"]
        for name, s in schedules.items()
    }
    assert modes == {"lake_maintenance_nightly": "full", "lake_maintenance_hourly": "light"}


def test_the_cli_dry_run_reports_and_changes_nothing(lake_home: Path, capsys):
    from ordertower.settings import get_settings
    from pipelines.cli import main

    catalog = Path(get_settings().catalog)
    assert main(["lake", "maintain", "--dry-run"]) == 1  # no lake yet: one clear line
    assert "no lake at" in capsys.readouterr().err
    assert not catalog.exists(), "maintenance created a lake"
    _stream_lake(batches=4)
    with connect(read_only=True) as con:
        before = _snapshot_ids(con)
    assert main(["lake", "maintain", "--dry-run"]) == 0
    assert "dry run" in capsys.readouterr().out
    with connect(read_only=True) as con:
        assert _snapshot_ids(con) == before


def test_the_job_runs(lake_home: Path):
    # not beside capsys: Dagster's loggers keep the stderr they first see, and capsys closes
    # its stream after the test (every later Dagster run on the worker then fails to log)
    import dagster as dg

    from pipelines.defs.maintenance.jobs import lake_maintenance_job

    _stream_lake(batches=4)
    # no compute-log capture: it swaps the process's stdout/stderr, which pytest owns here
    no_capture = {
        "compute_logs": {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        }
    }
    with dg.instance_for_test(overrides=no_capture) as instance:
        result = lake_maintenance_job.execute_in_process(
            instance=instance,
            run_config={"ops": {"maintain_lake": {"config": {"mode": "light"}}}},
        )
    assert result.success
    with connect(read_only=True) as con:
        assert con.execute("select mode, status from ops.lake_maintenance").fetchall() == [
            ("light", "ok")
        ]
