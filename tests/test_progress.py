"""The progress lines of ``ordertower materialize`` (pipelines/progress.py)."""

from __future__ import annotations

import io

from pipelines.progress import StageProgress


def test_a_stage_reports_quarters_and_closes_with_its_counts() -> None:
    out = io.StringIO()
    stage = StageProgress(2, 3, "ingest (2026-08-20..2026-08-21)", total=4, out=out)
    stage.begin()
    # each partition of an asset is a materialisation: an asset counts once
    for day in range(2):
        for key in ("raw/orders", "raw/order_lines", "raw/shipments", "raw/carrier_events"):
            stage.asset(key, {"landed": 10 + day, "quarantined": day})
    line = stage.finish(success=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2/3] ingest (2026-08-20..2026-08-21): 4 assets ..."
    assert [x.split(",")[0].strip() for x in lines[1:-1]] == [
        "1/4 assets",
        "2/4 assets",
        "3/4 assets",
    ]
    assert lines[-1] == line
    assert line.startswith("[2/3] ingest (2026-08-20..2026-08-21): done in ")
    assert line.endswith("(4/4 assets; 84 records landed, 4 quarantined)")


def test_a_failed_stage_says_so_and_names_the_step() -> None:
    out = io.StringIO()
    stage = StageProgress(1, 1, "marts", total=2, out=out)
    stage.begin()
    stage.asset("marts/fct_orders", {})
    stage.step_failed("dbt_lake")
    line = stage.finish(success=False)
    assert ": FAILED in " in line and "1/2 assets" in line and "failed: dbt_lake" in line
    assert "records" not in line  # nothing was landed: no record counts
