"""Dagster's SQLite event log with one SQLAlchemy engine per database file, not per write.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every connection it
opens, and it opens one or two per event (the run's own database, and the cross-run index for
asset and check events). A dbt build yields about a thousand events (every model planned,
materialised and output, every data test's check), so on the embedded default building
engines was a fixed share of every run's time (``tests/test_dagster_storage.py`` checks that
each file gets one engine).

This subclass keeps everything Dagster does (the same files, the same ``NullPool``: a fresh
SQLite connection per transaction, the same lock and schema checks) and only reuses the
engine, as SQLAlchemy intends ("once per particular database URL, held globally for the
lifetime of a single application process"). A process that runs many runs (the daemon, the
webserver) keeps the engines of the most recent :data:`KEPT_ENGINES` databases.

``dagster.yaml`` (written by :func:`pipelines.materialize.ensure_dagster_home`) selects it;
``base_dir`` defaults to ``$DAGSTER_HOME/history/runs``, where Dagster keeps the event log by
default, so a Dagster home can be moved. PostgreSQL storage (the scale-out profile) does not
need it: its engine holds a pool already.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

#: the engines kept per process (one per run's database, plus the index)
KEPT_ENGINES = 64


def default_base_dir() -> str:
    """Where Dagster keeps a home's event log by default."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("DAGSTER_HOME is not set: the event log needs a base_dir")
    return str(Path(home) / "history" / "runs")


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """Each connection in write-ahead-log mode with normal sync: a commit appends to the log
    instead of writing, syncing and deleting a rollback journal, and readers (the webserver)
    never block the run's writes.
    A crash can lose the last events written, never corrupt the file."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("pragma journal_mode=wal")
        cursor.execute("pragma synchronous=normal")
    finally:
        cursor.close()


class EngineReusingSqliteEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` that reuses one engine per shard (module doc)."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: Any, config_value: Mapping[str, Any]
    ) -> EngineReusingSqliteEventLogStorage:
        base_dir = config_value.get("base_dir") or default_base_dir()
        return cls(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _write_ahead_log)
            self._engines[shard] = engine
            while len(self._engines) > KEPT_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as SqliteEventLogStorage._connect, with the engine reused
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()
