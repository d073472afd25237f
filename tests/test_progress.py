"""The progress lines of ``ordertower materialize`` (pipelines/progress.py)."""

from __future__ import annotations

import io

from pipelines.progress import StageProgress


def test_a_stage_reports_quarters_and_closes_with_its_counts() -> None:
    out = io.StringIO()
    stage = StageProgress(2, 3, "ingest (2026-08-20..2026-08-21)", total=4, out=out)
    stage.begin()
    # a run over a partition range reports each partition as a materialisation, every one with
    # the range's totals (Dagster's single-run backfill): an asset and its counts count once
    for _day in range(2):
        for key in ("raw/orders", "raw/order_lines", "raw/shipments", "raw/carrier_events"):
            stage.asset(key, {"landed": 21, "quarantined": 1})
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


def test_a_demo_transcript_is_summarised_into_its_milestones_and_noise() -> None:
    """make bench-demo's summary of a timed `make demo` transcript (pipelines/demo_bench.py)."""
    from pipelines.demo_bench import summarise

    transcript = [
        (0.5, "== installing the locked dependencies into .venv (uv sync --frozen)"),
        (21.0, "== simulating 2000 orders over 5 days (seed 42)"),
        (30.2, "[1/7] simulate: done in 9 s"),
        (31.0, "/x/dagster/_core/decorator_utils.py:232: BetaWarning: Parameter is in beta"),
        (95.4, "[2/7] ingest (2026-08-20..2026-08-24): done in 9 s (10/10 assets)"),
        (240.0, "Open the UIs with: make ui"),
    ]
    summary = summarise(transcript, rc=0, seconds=241.0)
    assert summary["rc"] == 0 and summary["seconds"] == 241.0
    assert summary["install_seconds"] == 21.0  # until the demo's first stage
    assert [m["at_s"] for m in summary["milestones"]] == [0.5, 21.0, 30.2, 95.4]
    assert summary["lines"] == 6 and summary["noise_lines"] == 1
    assert "BetaWarning" in summary["noise_examples"][0]
    assert summary["last_lines"][-1] == "Open the UIs with: make ui"


def test_a_long_step_says_what_it_is_doing_at_most_once_per_interval(monkeypatch) -> None:
    """A step's own log lines (a wave planned) show between the quarter lines, off a terminal at
    most one per NOTE_SECONDS, so a stage of several minutes is never silent."""
    from pipelines import progress

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    stage = StageProgress(4, 7, "dispatch", total=2, out=out)
    stage.begin()
    for day in range(1, 7):
        clock[0] += 10  # a wave every ten seconds
        stage.note("dispatch_plan", f"wave 2026-09-0{day}:\n 500 orders")
    stage.note("dispatch_plan", "   ")  # nothing to say: nothing shown
    notes = out.getvalue().splitlines()[1:]
    # at 30 s and 60 s of the stage: the latest wave then, on one line, with the stage's time
    assert notes == ["  dispatch_plan: wave 2026-09-03: 500 orders (30 s)",
                     "  dispatch_plan: wave 2026-09-06: 500 orders (60 s)"]  # fmt: skip
    clock[0] += 30
    shown = len(out.getvalue().splitlines())
    # dagster-dbt's lines about its own command are not shown (the bar counts the models)
    for chatter in (
        "Running dbt command: `/tmp/ab/c/.venv/bin/dbt build --select fqn:*`.",
        "Finished dbt command: `/tmp/ab/c/.venv/bin/dbt build --x /w/dbt`.",
        "Copying `/tmp/ab/dbt/target/partial_parse.msgpack` to `/tmp/ab/dbt/target/x`.",
    ):
        stage.note("dbt_lake", chatter)
    assert len(out.getvalue().splitlines()) == shown
    stage.note(
        "risk_features",
        "stored /tmp/ab/c/lake/data/ml/features.parquet, sent to http://127.0.0.1:8765/m",
    )
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith("  risk_features: stored features.parquet, sent to http://127.0.0.1:8765/m")
    )  # the file's name, not the machine's directories
    clock[0] += 30
    stage.note("stream", "broker amqp://ops:s3cr3t-pw@127.0.0.1:5672/%2F reached")
    assert "s3cr3t-pw" not in out.getvalue() and "ops:***@" in out.getvalue()
    stage.note("dispatch_plan", "x" * 300)
    clock[0] += 30
    stage.note("dispatch_plan", "y" * 300)
    assert len(out.getvalue().splitlines()[-1]) < 130  # clipped
