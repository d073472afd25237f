"""The Dagster home's event log (pipelines/dagster_storage.py): Dagster's SQLite files, one
engine per file, write-ahead logging; and the dagster.yaml that selects it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from pipelines import dagster_storage
from pipelines.dagster_storage import EngineReusingSqliteEventLogStorage
from pipelines.materialize import _EARLIER_DAGSTER_YAML, DAGSTER_YAML, ensure_dagster_home


@dg.asset
def observed(context) -> int:
    for i in range(40):
        context.log_event(dg.AssetObservation(asset_key=f"obs_{i % 4}", metadata={"i": i}))
    return 1


@dg.asset_check(asset=observed)
def observed_is_one() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_a_run_s_events_are_stored_once_each_and_read_back(lake_home: Path, monkeypatch):
    from pipelines.materialize import instance

    created = []
    real = dagster_storage.create_engine
    monkeypatch.setattr(
        dagster_storage, "create_engine", lambda *a, **k: created.append(a[0]) or real(*a, **k)
    )
    inst = instance()
    storage = inst.event_log_storage
    assert isinstance(storage, EngineReusingSqliteEventLogStorage)
    # Dagster's own place for the event log, under the home's dagster folder
    assert Path(storage._base_dir) == lake_home / "dagster" / "history" / "runs"

    results = [dg.materialize([observed, observed_is_one], instance=inst) for _ in range(2)]
    assert all(r.success for r in results)
    for result in results:
        logs = inst.all_logs(result.run_id)
        assert sum(1 for e in logs if e.dagster_event_type == "ASSET_OBSERVATION") == 40
    # and in the cross-run index, per asset
    for i in range(4):
        assert len(inst.fetch_observations(dg.AssetKey(f"obs_{i}"), limit=100).records) == 20
    record = inst.event_log_storage.get_latest_materialization_events([observed.key])[observed.key]
    assert record is not None and record.run_id == results[-1].run_id
    check = inst.event_log_storage.get_latest_asset_check_execution_by_key(
        [observed_is_one.check_key]
    )[observed_is_one.check_key]
    assert check.run_id == results[-1].run_id
    # one engine per database file (the index and each run's), not one per event
    assert len(created) == len(set(created)) == 3
    for db in Path(storage._base_dir).glob("*.db"):
        with sqlite3.connect(db) as con:
            assert con.execute("pragma journal_mode").fetchone()[0] == "wal", db.name
    inst.dispose()


def test_the_engines_kept_are_bounded(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(dagster_storage, "KEPT_ENGINES", 3)
    storage = EngineReusingSqliteEventLogStorage(str(tmp_path))
    for shard in ("a", "b", "c", "d", "e"):
        with storage.run_connection(shard) as conn:
            conn.exec_driver_sql("select 1")
    assert list(storage._engines) == ["c", "d", "e"]
    # a shard whose engine went is opened again, with its tables
    with storage.run_connection("a") as conn:
        conn.exec_driver_sql("select count(*) from event_logs")
    storage.dispose()
    assert not storage._engines


def test_dagster_yaml_is_written_upgraded_when_unedited_and_kept_when_edited(
    lake_home: Path, monkeypatch
):
    config = lake_home / "dagster" / "dagster.yaml"
    ensure_dagster_home()
    assert config.read_text() == DAGSTER_YAML
    config.write_text(_EARLIER_DAGSTER_YAML)
    ensure_dagster_home()
    assert config.read_text() == DAGSTER_YAML
    edited = _EARLIER_DAGSTER_YAML + "run_monitoring:\n  enabled: true\n"
    config.write_text(edited)
    ensure_dagster_home()
    assert config.read_text() == edited


def test_without_a_base_dir_or_dagster_home_it_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match="DAGSTER_HOME"):
        EngineReusingSqliteEventLogStorage.from_config_value(None, {})


def test_a_dagster_home_that_cannot_be_created_is_a_clear_error(tmp_path: Path, monkeypatch):
    from pipelines.materialize import MaterializeError

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DAGSTER_HOME", str(blocker / "dagster"))
    with pytest.raises(MaterializeError, match="cannot prepare the Dagster home .*DAGSTER_HOME"):
        ensure_dagster_home()
