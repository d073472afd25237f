"""Every defect the simulator injects is caught: quarantined with a reason, never landed or lost."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ordertower import lake
from pipelines.ingest.runner import ingest_source, landed_partitions
from pipelines.ingest.sources import SOURCES
from pipelines.simulator import simulate


@pytest.mark.slow
def test_every_injected_defect_is_quarantined(lake_home: Path):
    landing = lake_home / "landing"
    simulate(landing, orders=3000, days=20, seed=11, dirty_rate=0.02)
    con = lake.connect()
    for source in SOURCES:
        ingest_source(source, landed_partitions(source, landing), con, landing, "defects")
    quarantined = con.execute(
        "select source_file, record_no, reasons from quarantine.rejected_records"
    ).fetchall()
    unbalanced = con.execute(
        "select count(*) from ops.ingest_status where received <> landed + quarantined"
    ).fetchone()[0]
    con.close()
    defects = duckdb.sql(f"select * from '{landing}/truth/defects.parquet'").fetchall()
    assert len(defects) > 20
    caught = {(f, n) for f, n, _ in quarantined}
    missed = []
    for file, record_no, record_id, kind in defects:
        # quarantine numbers CSV records by line (the header is line 1), JSONL by line as well
        line = record_no + 1 if file.endswith(".csv") else record_no
        if (file, line) not in caught:
            missed.append((file, record_no, record_id, kind))
    assert missed == []
    assert unbalanced == 0
    assert all(reasons for _, _, reasons in quarantined)
