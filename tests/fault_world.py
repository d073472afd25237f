"""The small world the fault tests share, and the lake's content checksums.

One world per test run, shared by the xdist workers (``tests/test_interrupted_run.py`` and
``tests/test_faults.py`` both use it): simulated, then materialised CLEAN once, by the same command the faulted runs
use, and its checksums kept. A faulted lake is then compared with it table by table: the same
row count and, for every column, the same order-independent checksum (the sum of the values'
hashes), except the columns that say *when* or *in which run* a row was written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dashboard_world import LAKE
from tests.shared_worlds import ENV_VARS, at_home, copy_home, shared_home

ORDERTOWER = str(Path(sys.executable).parent / "ordertower")
#: A CI-sized world: a few thousand orders over a few days (ingest and dbt of every mart).
WORLD = ["--orders", "2000", "--days", "5", "--seed", "5"]
#: The lake without the ML assets and their marts (tests/dashboard_world.py): ingestion, the
#: dbt staging, intermediate and marts; the models' own tests cover the ML assets.
SELECT = ["--select", LAKE, "--no-dbt-tests"]
#: The schemas compared: what ingestion lands (raw, quarantine) and what dbt builds on it.
SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts")
#: Columns whose values legitimately differ between two runs of the same input, by name in any
#: table. Only lineage and wall-clock columns: a value derived from the data never is.
VOLATILE = {
    "_run_id": "the ingestion run that wrote the row (a new id per run)",
    "run_id": "quarantine.rejected_records: the same lineage id",
    "_ingested_at": "when ingestion wrote the row (wall clock)",
    "ingested_at": "the staging / mart copy of _ingested_at (incremental models' watermark)",
    "quarantined_at": "when the record was quarantined (wall clock)",
    "refreshed_at": "when the dbt run that derived a mart row started (the incremental marts' watermark)",
}


def world_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a command run on the lake at ``home`` (its own Dagster instance)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    return {**env, "ORDERTOWER_HOME": str(home), "ORDERTOWER_INGEST_WORKERS": "1", **extra}


def ordertower(home: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ORDERTOWER, *args],
        env=world_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def simulate(home: Path) -> None:
    done = ordertower(home, "simulate", *WORLD)
    assert done.returncode == 0, done.stderr[-2000:]


def materialize(home: Path) -> subprocess.CompletedProcess:
    """The lake's materialisation, as every run of the fault tests does it."""
    return ordertower(home, "materialize", *SELECT)


def lake_checksums(home: Path) -> dict[str, dict[str, object]]:
    """Per table of :data:`SCHEMAS`: the row count and, per column (but :data:`VOLATILE`), the
    sum of the values' hashes: independent of row order and of how rows are split into files.
    Floating-point values are rounded to 6 decimals first: a sum over the same rows
    in another order may differ in its last bits."""
    from ordertower import lake

    with at_home(home):
        con = lake.connect(read_only=True)
    try:
        columns = con.execute(
            "select table_schema || '.' || table_name, column_name, data_type "
            "from information_schema.columns c join information_schema.tables t "
            "using (table_catalog, table_schema, table_name) "
            "where table_catalog = 'lake' and t.table_type = 'BASE TABLE' "
            "and table_schema in (select unnest($schemas)) order by 1, ordinal_position",
            {"schemas": list(SCHEMAS)},
        ).fetchall()
        tables: dict[str, list[tuple[str, str]]] = {}
        for table, column, data_type in columns:
            tables.setdefault(table, [])
            if column not in VOLATILE:
                tables[table].append((column, data_type))
        out: dict[str, dict[str, object]] = {}
        for table, cols in tables.items():
            exprs = []
            for column, data_type in cols:
                value = f'"{column}"'
                if data_type in ("DOUBLE", "FLOAT", "REAL"):
                    value = f"round({value}, 6)"
                exprs.append(f"sum(hash({value}))::varchar")
            schema, name = table.split(".")
            row = con.execute(
                f'select count(*){"".join(", " + e for e in exprs)} from "{schema}"."{name}"'
            ).fetchone()
            out[table] = {"rows": row[0], **{c: v for (c, _), v in zip(cols, row[1:], strict=True)}}
        return out
    finally:
        con.close()


def differences(got: dict, want: dict) -> list[str]:
    """Readable differences between two :func:`lake_checksums` (empty: the lakes are equal)."""
    found = []
    for table in sorted(set(got) | set(want)):
        if table not in got or table not in want:
            found.append(f"{table}: only in the {'clean' if table in want else 'faulted'} lake")
            continue
        for column in sorted(set(got[table]) | set(want[table])):
            if got[table].get(column) != want[table].get(column):
                if column == "rows":
                    found.append(f"{table}: {got[table]['rows']} rows, clean {want[table]['rows']}")
                else:
                    found.append(f"{table}.{column}: differs")
    return found


@dataclass(frozen=True)
class CleanWorld:
    home: Path
    checksums: dict[str, dict[str, object]]


def clean_world(factory: pytest.TempPathFactory) -> CleanWorld:
    """The shared world (tests/shared_worlds.py), built by the first test of the run that asks
    for it, with the checksums of its clean lake."""

    def build(home: Path) -> None:
        simulate(home)
        done = materialize(home)
        assert done.returncode == 0, done.stderr[-3000:]
        (home.parent / "checksums.json").write_text(json.dumps(lake_checksums(home)))

    home = shared_home(factory, "fault_world", build)
    return CleanWorld(home, json.loads((home.parent / "checksums.json").read_text()))


def copy_world(world: CleanWorld, home: Path) -> None:
    """A private copy of the world's home for a test that changes it."""
    copy_home(world.home, home)


def fresh_copy_of_landing(world: CleanWorld, home: Path) -> None:
    """The world's input (its landing zone) in a new, empty ``home``: the same files, and the
    same deployment's PII key (``secrets/``): the lake's identifiers are keyed hashes, so a lake
    built with another key is another lake."""
    import shutil

    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(world.home / "landing", home / "landing")
    shutil.copytree(world.home / "secrets", home / "secrets")
