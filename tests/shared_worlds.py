"""Worlds built once per test run and copied into the modules that use them.

A world is a simulated ``ORDERTOWER_HOME`` with its lake materialised: minutes of CI each. Many
modules need the same one, and most change it (decisions, re-runs, damaged files), so each
takes a private copy of the one built for the run instead of building its own.

Under xdist the workers share the build too: it lives in the run's common temporary folder and
the first worker that asks builds it under an exclusive lock while the others wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ordertower.settings import environment

ENV_VARS = (
    "ORDERTOWER_CATALOG",
    "ORDERTOWER_CATALOG_DSN",
    "ORDERTOWER_DATA_PATH",
    "DAGSTER_HOME",
    "MLFLOW_TRACKING_URI",
    # what a process that ran dbt exports about its lake (``export_dbt_env``): this process
    # has run many, so a world must not inherit them (an inherited ``ORDERTOWER_PII_KEY_FILE``
    # would hash a world's identifiers with another home's key)
    "ORDERTOWER_DUCKLAKE_URI",
    "ORDERTOWER_PII_KEY_FILE",
    "DBT_TARGET_PATH",
)


@contextlib.contextmanager
def at_home(home: Path) -> Iterator[None]:
    """Point this process's settings at ``home`` for a while (checksums, corruption)."""
    with environment({**dict.fromkeys(ENV_VARS), "ORDERTOWER_HOME": str(home)}):
        yield


def _run_root(factory: pytest.TempPathFactory) -> Path:
    base = factory.getbasetemp()
    # a worker's base is <run>/popen-gwN: <run> is this run's own, shared by its workers
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_home(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The world ``name`` of this run: ``build(home)`` runs once, by whichever test asks first.

    A build that failed half-way is started again by the next test that asks (and fails it
    the same way if the failure is real)."""
    root = _run_root(factory) / "worlds" / name
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    done = root / "built"
    with (root / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                if home.exists():
                    shutil.rmtree(home)
                home.mkdir(parents=True)
                build(home)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return home


def copy_home(source: Path, home: Path) -> Path:
    """A private copy of a built world at ``home``: landing zone, lake, models and the rest,
    without Dagster's run history (nothing but a run reads it). DuckLake stores data files
    relative to the catalog's ``data_path``, so repointing that one value makes the copy a lake
    of its own; MLflow's artifact locations are repointed the same way."""
    shutil.copytree(source, home, ignore=shutil.ignore_patterns("dagster"))
    data = str(home / "lake" / "data") + "/"
    with contextlib.closing(sqlite3.connect(home / "lake" / "catalog.sqlite")) as catalog:
        catalog.execute("update ducklake_metadata set value = ? where key = 'data_path'", (data,))
        catalog.commit()
    mlflow_db = home / "mlflow.db"
    if mlflow_db.exists():
        old, new = str(source), str(home)
        with contextlib.closing(sqlite3.connect(mlflow_db)) as db:
            for table, column in (
                ("experiments", "artifact_location"),
                ("runs", "artifact_uri"),
                ("model_versions", "source"),
                ("model_versions", "storage_location"),
                ("logged_models", "artifact_location"),
            ):
                with contextlib.suppress(sqlite3.OperationalError):  # not in every schema
                    db.execute(f"update {table} set {column} = replace({column}, ?, ?)", (old, new))
            db.commit()
    return home


@contextlib.contextmanager
def catalog_held(catalog: Path) -> Iterator[None]:
    """Another process holds the SQLite catalog's write lock (``begin exclusive``) while the
    block runs: what a second writer (a dbt build, the stream) meets."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "s = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "s.execute('begin exclusive'); print('locked', flush=True)\n"
            "sys.stdin.readline(); s.execute('rollback')",
            str(catalog),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        try:
            holder.communicate("release\n", timeout=60)
        finally:
            holder.kill()
