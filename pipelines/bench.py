"""``ordertower bench``: measure simulator and ingestion throughput, with a baseline in the same run.

For each scale (orders over 90 days) it times:

* the simulator writing the whole landing zone (rows of every file kind per second);
* contract-checked ingestion of every source and partition into the lake (parse, normalise,
  coerce, every contract rule (the default engine, DuckDB SQL), quarantine, write) - the platform's path;
* the baseline: DuckDB's own readers loading the same files with no contract at all, which is
  the floor any ingestion could reach; the ratio is the price of governance;
* ``dbt build`` of the whole lake on what was ingested (every model, data test and unit test),
  the marts' row counts, and as its baseline in the same run ``dbt run`` (the models without
  their tests) and a second, incremental ``dbt run`` (nothing new arrived).

Results go to ``bench/results/<date>.json`` (with the machine) and ``BENCHMARKS.md`` is
regenerated from every result file. Numbers are measured, never asserted in tests.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ordertower.machine import machine
from ordertower.settings import PROJECT_ROOT, environment, get_settings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"
DEFAULT_SCALES = (100_000, 1_000_000)


def _home(path: Path):
    return environment({"ORDERTOWER_HOME": str(path)})


def _baseline_load(landing: Path) -> tuple[int, float]:
    """DuckDB's native readers over the same files, no validation: rows and seconds."""
    import duckdb

    from ordertower.lake import NO_AUTO_EXTENSIONS

    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    started = time.perf_counter()
    rows = 0
    globs = [
        ("oms/orders/date=*/*.jsonl", "json"),
        ("tms/shipments/date=*/*.jsonl", "json"),
        ("crm/reviews/date=*/*.jsonl", "json"),
        ("crm/customers.jsonl", "json"),
        ("carriers/*/date=*/webhooks.jsonl", "json"),
        ("carriers/*/date=*/events.jsonl", "json"),
        ("wms/inventory/date=*/*.csv", "csv"),
        ("oms/cancellations/date=*/*.csv", "csv"),
        ("payments/chargebacks/date=*/*.csv", "csv"),
        ("carriers/*/date=*/events.csv", "csv;"),
        ("reference/*.csv", "csv"),
    ]
    for pattern, kind in globs:
        if not list(landing.glob(pattern)):
            continue
        path = str(landing / pattern)
        if kind == "json":
            sql = f"select count(*) from read_json('{path}', format='newline_delimited', ignore_errors=true, union_by_name=true)"
        else:
            delim = ";" if kind == "csv;" else ","
            sql = f"select count(*) from read_csv('{path}', delim='{delim}', header=true, ignore_errors=true, union_by_name=true)"
        con.execute(f"create or replace table t as {sql.replace('select count(*)', 'select *')}")
        rows += con.execute("select count(*) from t").fetchone()[0]
    return rows, time.perf_counter() - started


def _dbt(args: list[str], target: Path) -> tuple[float, dict[str, int]]:
    """Run dbt on the current lake: seconds and node statuses (from run_results.json)."""
    import subprocess
    import sys

    from ordertower.settings import DBT_PROJECT_DIR

    dbt = str(Path(sys.executable).parent / "dbt")
    env = {**os.environ, **get_settings().dbt_env()}
    cmd = [dbt, *args, "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{tail}")
    statuses: dict[str, int] = {}
    results = json.loads((target / "run_results.json").read_text())
    for r in results["results"]:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return seconds, statuses


def _mart_rows() -> dict[str, int]:
    from ordertower.lake import connect

    con = connect(read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' and table_catalog = 'lake' order by 1"
            ).fetchall()
        ]
        return {t: con.execute(f"select count(*) from marts.{t}").fetchone()[0] for t in tables}
    finally:
        con.close()


def bench_dbt(workdir: Path) -> dict[str, Any]:
    target = workdir / "dbt_target"
    build_s, statuses = _dbt(["build", "--full-refresh"], target)
    rows = _mart_rows()
    run_s, _ = _dbt(["run", "--full-refresh"], target)
    incremental_s, _ = _dbt(["run"], target)
    return {
        "build_seconds": round(build_s, 2),
        "nodes": statuses,
        "baseline_run_seconds": round(run_s, 2),
        "incremental_run_seconds": round(incremental_s, 2),
        "mart_rows": rows,
    }


def bench_risk() -> dict[str, Any]:
    """Risk features, training and scoring on the current lake, with the rules as baseline."""
    from ml.risk import store
    from ml.risk.config import load_policy
    from ml.risk.evaluate import compare_with_rules
    from ml.risk.model import train
    from ml.risk.pipeline import training_frame
    from ml.risk.rules import load_rules
    from ordertower.lake import connect

    con = connect()
    try:
        clock = store.lake_clock(con)
        first = con.execute(f"select min(ordered_at) from {store.FACTS}").fetchone()[0]
        started = time.perf_counter()
        rows = store.write_features(con, pd.Timestamp(first), clock + pd.Timedelta(seconds=1))
        feature_s = time.perf_counter() - started
        policy = load_policy()
        frame = training_frame(con, clock, policy)
        started = time.perf_counter()
        result = train(frame, policy)
        train_s = time.perf_counter() - started
        rules = load_rules()
        comparison = compare_with_rules(result.model, rules, result.test)
        recent = store.read_features(con, start=clock - pd.Timedelta(days=7))
    finally:
        con.close()
    started = time.perf_counter()
    result.model.score(recent)
    score_s = time.perf_counter() - started
    started = time.perf_counter()
    rules.points(recent)
    rules_s = time.perf_counter() - started
    return {
        "feature_rows": rows,
        "features": len(result.model.features),
        "feature_seconds": round(feature_s, 2),
        "training_orders": len(frame),
        "train_seconds": round(train_s, 2),
        "best_iteration": int(result.model.booster.best_iteration),
        "scoring_orders": len(recent),
        "scoring_orders_per_s": round(len(recent) / score_s) if score_s else None,
        "rules_orders_per_s": round(len(recent) / rules_s) if rules_s else None,
        "model_vs_rules": comparison.as_dict(),
    }


def bench_eta(sampling: bool = False) -> dict[str, Any]:
    """The ETA model on the current lake against the carrier's plan (ml/eta/bench.py); then a
    champion is registered so the stream bench predicts live ETAs as production would.
    ``sampling``: also what training on a third of the shipments costs in accuracy."""
    from ml.eta import pipeline as eta
    from ml.eta.bench import measure, sampling_effect
    from ordertower.lake import connect

    con = connect()
    try:
        result = measure(con)
        if sampling:
            result["sampling"] = sampling_effect(con)
        try:
            trained = eta.train_candidate(con)
            eta.promote(trained.candidate, eta.evaluate_candidate(con, trained.candidate))
        except Exception as exc:  # noqa: BLE001 - a young lake has no champion; the stream runs without
            result["champion"] = f"not registered: {exc}"
    finally:
        con.close()
    return result


def bench_stream() -> dict[str, Any]:
    """The live path at 500 events/s for a minute (pipelines/stream/bench.py)."""
    from pipelines.stream.bench import measure

    return measure()


def pooled_wave(con, target_lines: int, policy):
    """A wave of ``target_lines`` lines assembled from consecutive days of the lake (promises
    and order times shifted onto the first day), with the warehouses' outbound capacity and the
    first day's stock scaled by the number of days pooled: a peak-sized wave of real orders."""
    from ml.dispatch import store as dstore
    from ml.dispatch.wave import LINE_COLUMNS, Wave

    days = dstore.wave_dates(con)
    counts = con.execute(
        f"select wave_date, count(*) from {dstore.LINES} group by 1 order by 1"
    ).fetchall()
    per_day = {d: n for d, n in counts}
    start = len(days) // 3  # past the world's warm-up
    picked, total = [], 0
    for d in days[start:] + days[:start]:
        picked.append(d)
        total += per_day[d]
        if total >= target_lines:
            break
    cols = ", ".join(LINE_COLUMNS)
    lines = con.execute(
        f"select {cols}, wave_date from {dstore.LINES} where wave_date in "
        f"({', '.join('?' * len(picked))}) order by ordered_at, order_id, line_no",
        picked,
    ).df()
    shift = pd.to_timedelta(
        (pd.Timestamp(picked[0]) - pd.to_datetime(lines["wave_date"])).dt.days, unit="D"
    )
    lines["ordered_at"] = lines["ordered_at"] + shift
    lines["promised_delivery_date"] = pd.to_datetime(lines["promised_delivery_date"]) + shift
    cum = lines.groupby("order_id", sort=False).size().cumsum()
    lines = lines[lines["order_id"].isin(cum[cum <= target_lines].index)]
    factor = max(1.0, len(lines) / max(1, per_day[picked[0]]))
    network = dstore.load_network(con, policy)
    network.capacity = (network.capacity * factor).astype("int64")
    stock = dstore.load_stock(con, picked[0])
    stock["available_qty"] = (stock["available_qty"] * factor).astype("int64")
    wave = Wave.build(picked[0], lines[LINE_COLUMNS], stock, network, policy)
    return wave, len(picked)


def bench_dispatch(sizes: tuple[int, ...] = (5_000, 50_000)) -> dict[str, Any]:
    """Allocation on the current lake: waves of ``sizes`` lines, optimiser vs baseline, with the
    solve time and the proven gap; then the van rounds of the real median wave."""
    from ml.dispatch.allocate import baseline_plan, optimise
    from ml.dispatch.config import load_policy
    from ml.dispatch.evaluate import order_outcomes, shipments, summarise, verify
    from ordertower.lake import connect

    policy = load_policy()
    con = connect(read_only=True)
    out: dict[str, Any] = {"waves": []}
    try:
        for size in sizes:
            wave, pooled = pooled_wave(con, size, policy)
            row: dict[str, Any] = {
                "target_lines": size,
                "lines": len(wave.lines),
                "days_pooled": pooled,
            }
            started = time.perf_counter()
            base = baseline_plan(wave)
            row["baseline_seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()
            best = optimise(wave, base)
            row["optimise_seconds"] = round(time.perf_counter() - started, 2)
            for plan in (base, best):
                ships = shipments(wave, plan)
                summary = summarise(wave, plan, order_outcomes(wave, plan, ships), ships)
                summary.pop("utilisation", None)
                row[plan.name] = {
                    k: summary.get(k)
                    for k in (
                        "orders",
                        "cost_per_order_eur",
                        "cost_per_item_eur",
                        "kg_co2e_per_order",
                        "promise_hit_rate",
                        "next_day_hit_rate",
                        "next_day_hit_rate_feasible",
                        "split_rate",
                        "deferred_orders",
                        "max_utilisation",
                    )
                }
            row["gap"] = best.stats.get("gap")
            row["status"] = best.stats.get("status")
            row["subproblems"] = best.stats.get("subproblems")
            row["violations"] = len(verify(wave, best))
            out["waves"].append(row)
            print(f"bench: dispatch {json.dumps(row)}", flush=True)
    finally:
        con.close()
    return out


def bench_routing(
    instances: tuple[str, ...] = ("C101", "R101", "RC101", "R105", "RC105", "R109"),
    time_limit: float = 10.0,
) -> dict[str, Any] | None:
    """Both routing engines on a sample of Solomon instances (make bench-routing runs all 29)."""
    from ml.dispatch.routing import bench as rbench

    if not rbench.SOLOMON_DIR.is_dir():
        print(f"bench: routing skipped: no Solomon instances at {rbench.SOLOMON_DIR}", flush=True)
        return None
    rows = rbench.run(rbench.SOLOMON_DIR, ("pyvrp", "ortools"), time_limit, 1, only=instances)
    return {
        "time_limit_s": time_limit,
        "instances": list(instances),
        "rows": rows,
        "summary": rbench.summary(rows),
    }


def _ingest_partitions(landing: Path, keep) -> dict[str, Any]:
    """Contract-checked ingestion of every source's partitions whose key ``keep`` accepts
    (reference snapshots with the first pass): counts and seconds, per dataset too."""
    from ordertower.lake import connect
    from pipelines.ingest.runner import UNPARTITIONED, ingest_source, landed_partitions
    from pipelines.ingest.sources import SOURCES

    con = connect()
    out: dict[str, Any] = {"received": 0, "landed": 0, "quarantined": 0, "by_dataset": {}}
    started = time.perf_counter()
    try:
        for source in SOURCES:
            keys = [
                k
                for k in landed_partitions(source, landing)
                if (keep("") if k == UNPARTITIONED else keep(k))
            ]
            if not keys:
                continue
            t0 = time.perf_counter()
            for name, r in ingest_source(source, keys, con, landing, "bench").items():
                out["received"] += r.received
                out["landed"] += r.landed
                out["quarantined"] += r.quarantined
                out["by_dataset"][name] = {
                    "received": r.received,
                    # records DuckDB read and cast (typed reads); the rest went through Python
                    "typed": r.typed_records,
                    "seconds": round(time.perf_counter() - t0, 2),
                }
    finally:
        con.close()
    out["seconds"] = time.perf_counter() - started
    return out


#: the bench's runs follow each other within minutes: an incremental run there must not re-read
#: the last minutes again for a writer still committing (the live stream's lookback, 10 min by
#: default in production, where the nightly runs are a day apart)
NO_LOOKBACK = {"ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES": "0"}


#: the weekly models' stages before a night, as ``ordertower materialize`` selections
PREPARE_STAGES = (
    ("risk_features", "key:ml/order_risk_features", True),
    (
        "risk_training",
        "group:risk and not key:ml/order_risk_features and not "
        "key:ml/order_risk_scores and not kind:dbt",
        False,
    ),
    ("eta_training", "group:eta and not key:ml/shipment_etas and not kind:dbt", False),
)


def _high_water_kib(pid: int) -> int:
    """The peak resident memory of process ``pid`` so far (``VmHWM``), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured_command(argv: list[str], poll_seconds: float = 0.2) -> dict[str, float]:
    """Run ``argv`` to its end in a process of its own: its seconds and its peak resident
    memory, the kernel's high-water mark of that process (``VmHWM``, read every
    ``poll_seconds`` while it runs: ``wait4``'s figure would include the memory of this
    process, which the child is forked from). A failure raises with the end of its error
    output."""
    import subprocess
    import tempfile

    peak = 0
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            peak = max(peak, _high_water_kib(proc.pid))
            time.sleep(poll_seconds)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {tail}")
    return {"seconds": round(seconds, 2), "peak_gb": round(peak / 2**20, 2)}


def _prepare_models(first_day: str, last_day: str) -> dict[str, dict[str, float]]:
    """What the daily job scores with, as production has it before a night: the risk features
    of the world's days, and a risk and an ETA champion trained on them (the weekly jobs), each
    an ``ordertower materialize`` of its own, timed with its peak memory."""
    import sys

    ordertower = str(Path(sys.executable).parent / "ordertower")
    measured: dict[str, dict[str, float]] = {}
    for name, select, partitioned in PREPARE_STAGES:
        argv = [ordertower, "materialize", "--select", select]
        if partitioned:
            argv += ["--partition", f"{first_day}...{last_day}"]
        measured[name] = measured_command(argv)
    return measured


def _daily_job_run(day: str) -> tuple[Any, list[Any]]:
    """The ``daily`` job for ``day``, as the nightly schedule starts it: its result and log."""
    import dagster as dg

    from pipelines.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    with environment(NO_LOOKBACK):
        result = defs.resolve_job_def("daily").execute_in_process(
            partition_key=day, instance=instance, raise_on_error=False
        )
    return result, instance.all_logs(result.run_id)


def daily_step_seconds(logs: list[Any]) -> dict[str, float]:
    """Each step's seconds in a run, from its start and success events (in step order)."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in logs:
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in started:
            seconds[event.step_key] = round(entry.timestamp - started[event.step_key], 2)
    return seconds


#: the daily job's steps by what they do (ingest_* steps are ingestion; any other step not
#: named here, an asset check of its own, counts as "checks")
DAILY_STAGES = {
    "dbt_lake": "dbt build, incremental",
    "ml__order_risk_features": "risk features",
    "ml__order_risk_scores": "risk scoring",
    "dispatch_plan": "dispatch wave",
    "route_plans": "van rounds",
    "ml__shipment_etas": "ETAs",
    "dbt_ml_marts": "marts after the ML steps",
}


def daily_ingested(logs: list[Any], steps: dict[str, float]) -> dict[str, Any]:
    """What the run's ingestion received, landed and quarantined, per dataset too (from its
    conservation checks; a dataset's seconds are those of the step that landed it)."""
    from pipelines.defs.ingest.assets import CONSERVATION

    out: dict[str, Any] = {"received": 0, "landed": 0, "quarantined": 0, "by_dataset": {}}
    for entry in logs:
        event = entry.dagster_event
        if event is None or event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        evaluation = event.event_specific_data
        if evaluation.check_name != CONSERVATION:
            continue
        counts = {
            k: int(evaluation.metadata[k].value) for k in ("received", "landed", "quarantined")
        }
        for k, n in counts.items():
            out[k] += n
        out["by_dataset"][evaluation.asset_key.path[-1]] = {
            "received": counts["received"],
            "seconds": steps.get(event.step_key or "", 0.0),
        }
    return out


def bench_new_day(workdir: Path, day: str) -> dict[str, Any]:
    """One new day on a built lake: the ``daily`` job for it (ingest the day, dbt build
    incremental with the data tests on what changed, features, scoring, the wave and its van
    rounds, ETAs, the marts on each), per stage; as the baseline in the same run, ``dbt build
    --full-refresh`` of the same lake (every mart rebuilt whole, every test on every row)."""
    from ordertower.lake import connect

    started = time.perf_counter()
    result, logs = _daily_job_run(day)
    total = time.perf_counter() - started
    steps = daily_step_seconds(logs)
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        raise RuntimeError(f"the daily job for {day} failed at {failed}")
    stages: dict[str, float] = {}
    for step, s in steps.items():
        stage = DAILY_STAGES.get(step) or ("ingestion" if step.startswith("ingest_") else "checks")
        stages[stage] = round(stages.get(stage, 0.0) + s, 2)
    con = connect(read_only=True)
    try:
        rederived = {
            mart: con.execute(
                f"select count(*) filter (where refreshed_at = (select max(refreshed_at) "
                f"from marts.{mart})), count(*) from marts.{mart}"
            ).fetchone()
            for mart in (
                "fct_orders",
                "fct_shipment_legs",
                "fct_order_timeline",
                "fct_order_exceptions",
                "kpi_daily",
            )
        }
    finally:
        con.close()
    full_s, _ = _dbt(["build", "--full-refresh"], workdir / "dbt_target")
    ingested = daily_ingested(logs, steps)
    return {
        "received": ingested["received"],
        "ingested": ingested,
        "ingest_seconds": stages.get("ingestion", 0.0),
        "dbt_build_incremental_seconds": stages.get("dbt build, incremental", 0.0),
        "stages": stages,
        "steps": steps,
        "rederived_rows": {m: {"rows": r[0], "of": r[1]} for m, r in rederived.items()},
        "baseline_dbt_build_full_refresh_seconds": round(full_s, 2),
        "seconds": round(total, 2),
    }


def _world_then_its_last_day(workdir: Path, landing: Path) -> dict[str, Any]:
    """The landed world but its last day, ingested and built whole, its risk features and the
    two champions; then the daily job for its last day, what runs each night."""
    from pipelines.ingest.runner import landed_partitions
    from pipelines.ingest.sources import SOURCES

    days = landed_partitions(next(s for s in SOURCES if s.name == "orders"), landing)
    last_day = max(days)
    first = _ingest_partitions(landing, lambda key: key < last_day)
    built_s, _ = _dbt(["build", "--full-refresh"], workdir / "dbt_target")
    prepared = _prepare_models(min(days), max(d for d in days if d < last_day))
    new_day = bench_new_day(workdir, last_day)
    new_day |= {"day": last_day, "world_build_seconds": round(built_s, 2), "prepared": prepared}
    day = new_day["ingested"] | {"seconds": new_day["ingest_seconds"]}
    return {"first": first, "day": day, "new_day": new_day}


def run_new_day_bench(orders: int = 100_000, days: int = 90, keep: bool = False) -> Path:
    """``make bench-day``: one new day on a lake of ``orders`` over ``days`` (ingest it, dbt
    build incrementally) against a full rebuild in the same run ->
    bench/results/new-day-<orders>-<date>T<hhmm>.json. ``keep``: leave the world in the bench directory
    (to profile a stage on it) instead of deleting it."""
    from pipelines.simulator import simulate

    workdir = get_settings().bench_dir / f"new_day_{orders}"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with _home(workdir):
        simulate(get_settings().landing_dir, orders=orders, days=days, seed=7)
        phases = _world_then_its_last_day(workdir, get_settings().landing_dir)
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "orders": orders,
        "days": days,
        "new_day": phases["new_day"],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    # date and time: a second run on the same day is a second file, never an overwrite
    path = RESULTS_DIR / f"new-day-{orders}-{datetime.now(UTC):%Y-%m-%dT%H%M}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    write_benchmarks_md()
    return path


def run_ingest_bench(orders: int = 100_000, days: int = 90) -> Path:
    """The ingestion paths over one simulated world, in one run: DuckDB's bare load of the
    files (no contract), every contract rule with typed reads (the default), and every contract
    rule record by record (``ORDERTOWER_TYPED_READS=0``); each path into a lake of its own. The
    two contract paths must land and quarantine the same counts (tests/test_typed_reads.py
    checks them value for value on smaller worlds)."""
    from ordertower.lake import connect
    from pipelines.simulator import simulate

    workdir = get_settings().bench_dir / f"ingest_{orders}"
    if workdir.exists():
        shutil.rmtree(workdir)
    landing = workdir / "landing"
    started = time.perf_counter()
    simulate(landing, orders=orders, days=days, seed=7)
    sim_seconds = time.perf_counter() - started
    base_rows, base_seconds = _baseline_load(landing)
    paths: dict[str, Any] = {}
    for name, flag in (("typed_reads", "1"), ("record_by_record", "0")):
        home = workdir / name
        with environment({"ORDERTOWER_HOME": str(home), "ORDERTOWER_TYPED_READS": flag}):
            run = _ingest_partitions(landing, lambda key: True)
            con = connect(read_only=True)
            try:
                tables = con.execute(
                    "select table_schema || '.' || table_name from information_schema.tables "
                    "where table_schema in ('raw', 'quarantine') and table_type = 'BASE TABLE'"
                ).fetchall()
                counts = {
                    t: con.execute(f"select count(*) from {t}").fetchone()[0] for (t,) in tables
                }
            finally:
                con.close()
        paths[name] = {
            "seconds": round(run["seconds"], 2),
            "received": run["received"],
            "landed": run["landed"],
            "quarantined": run["quarantined"],
            "typed": sum(d.get("typed", 0) for d in run["by_dataset"].values()),
            "by_dataset": run["by_dataset"],
            "table_rows": counts,
        }
        shutil.rmtree(home)
    typed, python = paths["typed_reads"], paths["record_by_record"]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "orders": orders,
        "days": days,
        "simulate_seconds": round(sim_seconds, 2),
        "baseline_duckdb_no_contracts": {"seconds": round(base_seconds, 2), "rows": base_rows},
        "paths": paths,
        "same_counts": typed["table_rows"] == python["table_rows"],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M")
    path = RESULTS_DIR / f"ingest-{orders}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir)
    write_benchmarks_md()
    return path


def _ingest_paths_lines() -> list[str]:
    """``make bench-ingest``: the ingestion paths against DuckDB's bare load, per run."""
    runs = [json.loads(f.read_text()) for f in sorted(RESULTS_DIR.glob("ingest-*.json"))]
    if not runs:
        return []
    lines = [
        "## Ingestion paths (`make bench-ingest`)",
        "",
        "One simulated world's landing files, loaded three ways in the same run, each into a "
        "lake of its own: DuckDB's own readers with no contract (the baseline), every contract "
        "rule with typed reads (the default: DuckDB reads, casts and normalises the records "
        "that need no judgement, docs/data_contracts.md), and every contract rule record by "
        "record in Python (`ORDERTOWER_TYPED_READS=0`). *Cost* = seconds / baseline seconds; "
        "the issue's target is at most 3x. *File records*: as DuckDB's load counts them (an "
        "order with its lines is one); *rows*: what the contract paths land or quarantine "
        "(lines, shipment lines and legs are rows of their own); *typed*: the rows DuckDB read "
        "and cast. *Same counts*: both contract paths landed and quarantined the same number of rows in every "
        "table. *Machine speed* as in the new-day table.",
        "",
        "| orders | date | machine speed s | file records | rows | baseline s | typed reads s | "
        "cost | typed | record by record s | cost | same counts |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(runs, key=lambda run: (run["orders"], run["date"])):
        base = r["baseline_duckdb_no_contracts"]["seconds"]
        t, p = r["paths"]["typed_reads"], r["paths"]["record_by_record"]
        lines.append(
            f"| {r['orders']:,} | {r['date'][:16].replace('T', ' ')} | {_speed(r['machine'])} | "
            f"{r['baseline_duckdb_no_contracts']['rows']:,} | {t['received']:,} | {base} | "
            f"{t['seconds']} | {t['seconds'] / base:.1f}x | "
            f"{t['typed'] / t['received']:.0%} | {p['seconds']} | {p['seconds'] / base:.1f}x | "
            f"{'yes' if r['same_counts'] else 'NO'} |"
        )
    lines.append("")
    return lines


def _new_day_lines() -> list[str]:
    """One new day, incremental against a full rebuild: every run, by world size then date,
    from ``make bench-day`` (new-day-*.json) or ``make bench`` (its scales)."""
    runs: list[dict[str, Any]] = []
    for f in sorted(RESULTS_DIR.glob("new-day-*.json")) + sorted(RESULTS_DIR.glob("20*.json")):
        data = json.loads(f.read_text())
        entries = data.get("scales", [data])
        for e in entries:
            if "new_day" in e and e["new_day"]:
                runs.append(e | {"date": data["date"], "machine": data["machine"]})
    if not runs:
        return []
    stages = [
        "risk features",
        "risk scoring",
        "dispatch wave",
        "van rounds",
        "ETAs",
        "marts after the ML steps",
    ]
    lines = [
        "## One new day (`make bench-day`, and `make bench` at each scale)",
        "",
        "A world of N orders over its days, all but its last day ingested and built, its risk "
        "features and the risk and ETA champions trained; then the `daily` job for the last "
        "day, as the nightly schedule starts it: the day's contract-checked ingestion, `dbt "
        "build` with the marts incremental (docs/lake.md, Incremental marts) and the data tests "
        "on what the run changed, the day's risk features and scores, its dispatch wave and "
        "van rounds, the ETAs of the open shipments, the marts on each. Seconds per stage from "
        "the run's step events; *day total* is the whole run. Target: at most 180 s at 1M "
        "orders. Baseline in the same run: `dbt build --full-refresh` of the same lake (every "
        "mart rebuilt whole, every test on every row). Re-derived: the rows the day's run "
        "wrote of fct_orders. A run without stage figures timed ingestion and dbt only. "
        "*Machine speed*: the seconds the machine took for a fixed piece of Python and of "
        "DuckDB work (`ordertower.machine.speed`, lower is faster; machines of the same kind "
        "differ by 2x and more), recorded since 2026-12-06.",
        "",
        "| orders | date | cores | machine speed s | day's records | ingest s | "
        "dbt build incremental s | "
        + " | ".join(f"{s} s" for s in stages)
        + " | day total s | re-derived orders | baseline: dbt build full refresh s |",
        "|---:|---|---:|---|---:|---:|---:|" + "---:|" * len(stages) + "---:|---:|---:|",
    ]
    for e in sorted(runs, key=lambda run: (run["orders"], run["date"])):
        orders = e["orders"]
        d = e["new_day"]
        o = d["rederived_rows"]["fct_orders"]
        timed = d.get("stages", {})
        lines.append(
            f"| {orders:,} | {e['date'][:10]} | {e['machine']['cpus']} | "
            f"{_speed(e['machine'])} | {d['received']:,} | "
            f"{d['ingest_seconds']} | {d['dbt_build_incremental_seconds']} | "
            + " | ".join(str(timed[s]) if s in timed else "" for s in stages)
            + f" | {d['seconds']} | {o['rows']:,} of {o['of']:,} | "
            f"{d['baseline_dbt_build_full_refresh_seconds']} |"
        )
    lines.append("")
    return lines


def _prepared_lines() -> list[str]:
    """The weekly models before a night, per ``make bench-day`` run: risk features, risk and
    ETA training, seconds and (since 2026-12-06) peak memory."""
    runs = []
    for f in sorted(RESULTS_DIR.glob("new-day-*.json")):
        data = json.loads(f.read_text())
        prepared = (data.get("new_day") or {}).get("prepared")
        if prepared:
            runs.append((data, prepared))
    if not runs:
        return []

    def cell(value: Any) -> str:
        if isinstance(value, dict):  # seconds and peak memory, measured in a process of its own
            return f"{value['seconds']} / {value['peak_gb']}"
        return f"{value} / -" if value is not None else ""

    lines = [
        "### Before the night: the weekly models on the same world",
        "",
        "The risk features of every day but the last, the risk champion and the ETA champion "
        "(`PREPARE_STAGES` in `pipelines/bench.py`), each an `ordertower materialize` of its "
        "own: seconds / peak resident memory in GB of that process (- before it was "
        "measured). Target for ETA training: a 1M-order world in at most 600 s and 6 GB.",
        "",
        "| orders | date | machine speed s | risk features s / GB | risk training s / GB | "
        "ETA training s / GB |",
        "|---:|---|---|---|---|---|",
    ]
    for data, prepared in sorted(runs, key=lambda r: (r[0]["orders"], r[0]["date"])):
        lines.append(
            f"| {data['orders']:,} | {data['date'][:10]} | {_speed(data['machine'])} | "
            + " | ".join(cell(prepared.get(n)) for n, _, _ in PREPARE_STAGES)
            + " |"
        )
    lines.append("")
    return lines


def _speed(machine_info: dict[str, Any]) -> str:
    """A results file's machine speed, Python / DuckDB seconds (blank before it was recorded)."""
    speed = machine_info.get("speed")
    return f"{speed['python_s']} / {speed['duckdb_s']}" if speed else ""


def bench_scale(orders: int, days: int, workdir: Path, live: bool = False) -> dict[str, Any]:
    from pipelines.simulator import simulate

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with _home(workdir):
        landing = get_settings().landing_dir
        started = time.perf_counter()
        summary = simulate(landing, orders=orders, days=days, seed=7)
        sim_seconds = time.perf_counter() - started
        sim_rows = sum(summary.as_dict().get("rows", {}).values())

        phases = _world_then_its_last_day(workdir, landing)
        first, day, new_day = phases["first"], phases["day"], phases["new_day"]
        ingest_seconds = first["seconds"] + day["seconds"]
        received = first["received"] + day["received"]
        landed = first["landed"] + day["landed"]
        quarantined = first["quarantined"] + day["quarantined"]
        per_dataset = {
            name: {
                field: round(
                    sum(p["by_dataset"].get(name, {}).get(field, 0) for p in (first, day)), 2
                )
                for field in ("received", "typed", "seconds")
            }
            for name in first["by_dataset"] | day["by_dataset"]
        }
        base_rows, base_seconds = _baseline_load(landing)
        dbt = bench_dbt(workdir)
        risk = bench_risk()
        dispatch = bench_dispatch()
        eta = bench_eta(sampling=live)
        # the live path once, at the first scale (its latency does not depend on the lake's size
        # as much as on the event rate; the rate is the bench's input)
        stream = bench_stream() if live else None
    size_mb = sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / 1e6
    return {
        "orders": orders,
        "days": days,
        "simulator": {
            "seconds": round(sim_seconds, 2),
            "rows": sim_rows,
            "rows_per_s": round(sim_rows / sim_seconds),
            "landing_mb": round(size_mb, 1),
            "rows_by_kind": summary.as_dict().get("rows", {}),
        },
        "ingestion": {
            "engine": get_settings().contract_engine,
            "seconds": round(ingest_seconds, 2),
            "received": received,
            "landed": landed,
            "quarantined": quarantined,
            "rows_per_s": round(received / ingest_seconds),
            "by_dataset": per_dataset,
        },
        "baseline_duckdb_no_contracts": {
            "seconds": round(base_seconds, 2),
            "rows": base_rows,
            "rows_per_s": round(base_rows / base_seconds) if base_seconds else None,
        },
        "cost_ratio_seconds": round(ingest_seconds / base_seconds, 1) if base_seconds else None,
        "dbt": dbt,
        "new_day": new_day,
        "risk": risk,
        "dispatch": dispatch,
        "eta": eta,
        "stream": stream,
    }


def bench_feature_scaling(factors: tuple[int, ...] = (1, 10, 30)) -> dict[str, Any] | None:
    """Risk features at 1x, 10x and 30x the current lake's orders, against the reference.

    The lake's order facts are replicated ``factor`` times within the same period (each copy
    shifted by seconds, every entity key kept), so each entity gets ``factor`` times the orders
    in the same 90 days: the hub entities a bigger retailer has. The reference definition (every
    pair of an entity's orders) runs at 1x only, in the same run; the linear build must give
    the same features there and keep its time per order as the orders grow.
    """
    import duckdb
    import numpy as np

    from ml.risk.features import build_features, feature_names
    from ml.risk.store import FACTS
    from ordertower.lake import NO_AUTO_EXTENSIONS, connect

    lake = connect(read_only=True)
    try:
        facts = lake.execute(f"select * from {FACTS}").fetch_arrow_table()
        labels = lake.execute(
            "select order_id, is_fraud, fraud_known_at from intermediate.int_order_fraud_labels"
        ).fetch_arrow_table()
    finally:
        lake.close()
    if facts.num_rows == 0:
        return None
    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    con.register("facts_1", facts)
    con.register("labels_1", labels)
    rows = []
    for factor in factors:
        con.execute(
            "create or replace table facts as select * replace (order_id || '-' || k as order_id, "
            f"ordered_at + to_seconds(k * 37) as ordered_at) from facts_1, range({factor}) r(k)"
        )
        con.execute(
            "create or replace table labels as select * replace (order_id || '-' || k as order_id) "
            f"from labels_1, range({factor}) r(k)"
        )
        started = time.perf_counter()
        linear = build_features(con, "facts", "labels")
        seconds = time.perf_counter() - started
        row = {"factor": factor, "orders": len(linear), "seconds": round(seconds, 2)}
        row["us_per_order"] = round(seconds / len(linear) * 1e6, 1)
        if factor == 1:
            started = time.perf_counter()
            reference = build_features(con, "facts", "labels", pairs=True)
            row["reference_seconds"] = round(time.perf_counter() - started, 2)
            names = feature_names()
            a = linear.set_index("order_id")[names]
            b = reference.set_index("order_id").loc[a.index, names]
            row["features_equal_reference"] = all(
                a[c].fillna("<na>").tolist() == b[c].fillna("<na>").tolist()
                if a[c].dtype == object
                else np.allclose(
                    a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-5, equal_nan=True
                )
                for c in names
            )
        del linear
        rows.append(row)
        print(f"bench: risk features {json.dumps(row)}", flush=True)
    con.close()
    return {"features": len(feature_names()), "rows": rows}


def bench_fraud_data() -> dict[str, Any] | None:
    """The same pipeline on the public Fraud_Data set (None when the data is not beside us)."""
    from ml.risk.fraud_ecommerce import FraudDataError, run_report

    try:
        started = time.perf_counter()
        report = run_report()
        report["seconds"] = round(time.perf_counter() - started, 2)
        return report
    except FraudDataError as exc:
        print(f"bench: Fraud_Data skipped: {exc}", flush=True)
        return None


def run_bench(scales: list[int] | None = None, days: int = 90) -> Path:
    scales = list(scales or DEFAULT_SCALES)
    workroot = get_settings().bench_dir
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "scales": [],
    }
    for orders in scales:
        print(f"bench: {orders:,} orders over {days} days ...", flush=True)
        results["scales"].append(
            bench_scale(orders, days, workroot / f"orders_{orders}", live=orders == min(scales))
        )
        if orders == min(scales):  # the smallest world, grown 10x and 30x
            with _home(workroot / f"orders_{orders}"):
                results["feature_scaling"] = bench_feature_scaling()
        print(
            json.dumps(
                results["scales"][-1]["simulator"]
                | {"ingest_rows_per_s": results["scales"][-1]["ingestion"]["rows_per_s"]}
            ),
            flush=True,
        )
    results["fraud_data"] = bench_fraud_data()
    results["routing"] = bench_routing()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{datetime.now(UTC).date().isoformat()}.json"
    if path.exists():  # a scale measured again today replaces its earlier entry; others stay
        earlier = json.loads(path.read_text())
        mine = {s["orders"] for s in results["scales"]}
        kept = [s for s in earlier.get("scales", []) if s["orders"] not in mine]
        results["scales"] = sorted(kept + results["scales"], key=lambda s: s["orders"])
    path.write_text(json.dumps(results, indent=2) + "\n")
    write_benchmarks_md()
    return path


def _top_level_received(scale: dict[str, Any]) -> int:
    """Records as the files hold them (an order with its nested lines is one record)."""
    from pipelines.ingest.sources import SOURCES

    by_dataset = scale["ingestion"]["by_dataset"]
    return sum(by_dataset.get(s.dataset, {}).get("received", 0) for s in SOURCES)


def write_benchmarks_md() -> None:
    """Regenerate BENCHMARKS.md from every result file (newest first)."""
    # routing-<date>.json come from make bench-routing and are shown in their own section
    files = sorted(
        (
            f
            for f in RESULTS_DIR.glob("*.json")
            if not f.name.startswith(
                (
                    "routing-",
                    "stream-",
                    "ui-",
                    "lake-maintenance-",
                    "alerts-quality-",
                    "tests-",
                    "demo-",
                    "new-day-",
                    "ingest-",
                )
            )
        ),
        reverse=True,
    )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`ordertower bench`) from `bench/results/*.json`; do not edit by hand.",
        "",
        "- **Simulator**: records of every file kind (an order with its nested lines is one record)",
        "  written per second, with the landing zone's size. Target: 1M orders in at most 120 s.",
        "- **Ingestion**: the platform's path over the same files: parse, normalise carrier formats,",
        "  cast to contract types, run every contract rule (*engine*: DuckDB SQL, the default since",
        "  2026-12-05, or Great Expectations, `ORDERTOWER_CONTRACT_ENGINE`), quarantine, write",
        "  DuckLake. *Records* counts file records; *rows* also counts the nested lines, shipment",
        "  lines and legs that land as their own datasets.",
        "- **Baseline**, same run, same files: DuckDB's own readers loading them with no contract at",
        "  all. *Cost* = ingestion seconds / baseline seconds: the price of contracts, quarantine and",
        "  lineage over a bare load.",
        "- **dbt**: `dbt build --full-refresh` of the whole lake after ingestion (every model, data",
        "  test and unit test; `threads: 1` on the SQLite catalog). Baselines in the same run:",
        "  `dbt run --full-refresh` (the models without their tests) and a second, incremental",
        "  `dbt run` with nothing new. Below each table, the marts' row counts.",
        "",
    ]
    for f in files:
        data = json.loads(f.read_text())
        m = data["machine"]
        lines += [
            f"## {data['date']} ({m['cpus']} cores, {m['memory_gb']} GB, {m['cpu']}, Python {m['python']})",
            "",
            "| orders | simulate s | records | records/s | landing MB | engine | ingest s | ingest records/s | ingest rows/s | quarantined | baseline s | baseline records/s | cost |",
            "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in data["scales"]:
            sim, ing, base = s["simulator"], s["ingestion"], s["baseline_duckdb_no_contracts"]
            records = _top_level_received(s)
            lines.append(
                f"| {s['orders']:,} | {sim['seconds']} | {sim['rows']:,} | {sim['rows_per_s']:,} | "
                f"{sim['landing_mb']} | {ing.get('engine', 'great_expectations')} | "
                f"{ing['seconds']} | {round(records / ing['seconds']):,} | "
                f"{ing['rows_per_s']:,} | {ing['quarantined']:,} | {base['seconds']} | "
                f"{base['rows_per_s']:,} | {ing['seconds'] / base['seconds']:.1f}x |"
            )
        lines.append("")
        dbt_scales = [s for s in data["scales"] if "dbt" in s]
        if dbt_scales:
            lines += [
                "| orders | dbt build s | nodes (pass / warn / error) | dbt run s (no tests) | incremental run s |",
                "|---:|---:|---|---:|---:|",
            ]
            for s in dbt_scales:
                d = s["dbt"]
                n = d["nodes"]
                passed = n.get("pass", 0) + n.get("success", 0)
                lines.append(
                    f"| {s['orders']:,} | {d['build_seconds']} | {passed} / {n.get('warn', 0)} / "
                    f"{n.get('error', 0) + n.get('fail', 0)} | {d['baseline_run_seconds']} | "
                    f"{d['incremental_run_seconds']} |"
                )
            lines.append("")
            marts = sorted({m for s in dbt_scales for m in s["dbt"]["mart_rows"]})
            header = "| mart | " + " | ".join(f"{s['orders']:,} orders" for s in dbt_scales) + " |"
            lines += [header, "|---|" + "---:|" * len(dbt_scales)]
            for m in marts:
                cells = " | ".join(f"{s['dbt']['mart_rows'].get(m, 0):,}" for s in dbt_scales)
                lines.append(f"| {m} | {cells} |")
            lines.append("")
        lines += _risk_lines(data)
        lines += _dispatch_lines(data)
        lines += _eta_lines(data)
        lines += _stream_lines(data)
    lines += _routing_full_lines()
    lines += _live_full_lines()
    lines += _ui_full_lines()
    lines += _alerts_quality_lines()
    lines += _maintenance_full_lines()
    lines += _ingest_paths_lines()
    lines += _new_day_lines()
    lines += _prepared_lines()
    lines += _demo_lines()
    lines += _test_suite_lines()
    BENCHMARKS_MD.write_text("\n".join(lines) + "\n")


def _demo_lines() -> list[str]:
    from pipelines.demo_bench import demo_lines

    return demo_lines()


def _test_suite_lines() -> list[str]:
    """Every ``tests-<date>.json`` (``.ci/run`` summarises the JUnit report of ``make test``):
    the CI suite's size and wall time against its 15-minute budget, newest first."""
    files = sorted(RESULTS_DIR.glob("tests-*.json"), reverse=True)
    if not files:
        return []
    lines = [
        "## The test suite in CI",
        "",
        "A clean clone's `CI=true .ci/run` (every test: slow, browser and service ones, two",
        "workers); `.ci/run` writes the summary, copied here as `bench/results/tests-<date>.json`.",
        "Budget: 15 minutes on 2 cores.",
        "",
        "| written | cores | machine speed s | tests | outcomes | pytest s | "
        "slowest module (s, summed over its tests) |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for f in files:
        d = json.loads(f.read_text())
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(d["outcomes"].items()))
        module, seconds = next(iter(d["modules"].items()), ("-", 0))
        lines.append(
            f"| {d['written_at'][:16]} | {d['machine']['cpus']} | {_speed(d['machine'])} | "
            f"{d['tests']} | {outcomes} | "
            f"{d['pytest_seconds']:,.0f} | {module} ({seconds:,.0f}) |"
        )
    return [*lines, ""]


def _alerts_quality_lines() -> list[str]:
    """The newest ``alerts-quality-<date>.json`` (``ordertower alerts quality``): precision and
    recall per rule against the simulated world's truth, before and after issue 18."""
    files = sorted(RESULTS_DIR.glob("alerts-quality-*.json"), reverse=True)
    if not files:
        return []
    data = json.loads(files[0].read_text())
    w = data["world"]
    runs = [k for k in data if k.startswith(("before", "after"))]
    lines = [
        f"## Alert quality against the world's truth ({data['date'][:10]})",
        "",
        f"`ordertower alerts quality`: every carrier event of a simulated world ({w['orders']:,} "
        f"orders, {w['days']} days, seed {w['seed']}) replayed through the stream's lander and "
        "alert hook; *before* = `ml/alerts/baseline_rules.yaml` with the unbounded clock, "
        "*after* = `ml/alerts/rules.yaml` with the guarded clock and the storm guard; each also "
        "with one event dated ten days ahead. Goal: precision and recall >= 0.9 for the "
        "carrier-event rules; messages <= 1.1 x the truly affected orders. See "
        "[docs/streaming.md](docs/streaming.md).",
        "",
        "| rule | " + " | ".join(f"{r} P / R (alerts)" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    rules = sorted({rule for r in runs for rule in data[r]["rules"]})
    for rule in rules:
        cells = []
        for r in runs:
            q = data[r]["rules"].get(rule, {})
            cells.append(f"{q.get('precision')} / {q.get('recall')} ({q.get('alerts', 0):,})")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    cells = []
    for r in runs:
        m = data[r]["messages"]
        cells.append(
            f"{m['messages']:,} for {m['orders_truly_affected']:,} "
            f"({m['messages_per_affected_order']})"
        )
    lines += ["| customer messages for truly affected orders | " + " | ".join(cells) + " |", ""]
    return lines


def _dispatch_lines(data: dict[str, Any]) -> list[str]:
    scales = [s for s in data["scales"] if s.get("dispatch")]
    lines: list[str] = []
    if scales:
        lines += [
            "Dispatch (docs/dispatch.md): waves of real orders from the lake (consecutive days pooled",
            "onto one day, capacity and stock scaled alike), the optimised plan (HiGHS MIP through",
            "OR-Tools, region decomposition) against the baseline rule (nearest warehouse with stock,",
            "each line as it comes) in the same run.",
            "",
            "| orders (world) | wave lines | plan | solve s | proven gap | cost/order EUR | cost/item EUR | kg CO2e/order | next-day hit | next-day hit where feasible | promise hit | split rate | violations |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in scales:
            for w in s["dispatch"]["waves"]:
                for plan, secs, gap in (
                    ("optimised", w["optimise_seconds"], f"{(w['gap'] or 0):.2%}"),
                    ("baseline", w["baseline_seconds"], "-"),
                ):
                    k = w[plan]
                    lines.append(
                        f"| {s['orders']:,} | {w['lines']:,} | {plan} | {secs} | {gap} | "
                        f"{k['cost_per_order_eur']:.2f} | {k['cost_per_item_eur']:.2f} | "
                        f"{k['kg_co2e_per_order']:.3f} | {k['next_day_hit_rate']:.1%} | "
                        f"{k['next_day_hit_rate_feasible']:.1%} | {k['promise_hit_rate']:.1%} | "
                        f"{k['split_rate']:.1%} | {w['violations'] if plan == 'optimised' else '-'} |"
                    )
        lines.append("")
    routing = data.get("routing")
    if routing:
        lines += [
            f"Routing sample ({', '.join(routing['instances'])}; {routing['time_limit_s']:g} s per "
            "instance and engine; gap to the DIMACS best-known):",
            "",
            "| engine | instances | feasible | mean gap % | max gap % | mean s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for engine, r in routing["summary"].items():
            lines.append(
                f"| {engine} | {r['instances']} | {r['feasible']} | {r['mean_gap_pct']} | "
                f"{r['max_gap_pct']} | {r['mean_seconds']} |"
            )
        lines.append("")
    return lines


def run_live_bench(rate: float = 500.0, seconds: float = 60.0) -> Path:
    """``make bench-stream``: the ETA evaluation and the live path on a copy of the current lake
    (``ORDERTOWER_HOME``, e.g. the demo lake) -> ``bench/results/stream-<date>.json``.

    The copy (catalog, data files, MLflow store; the landing zone is linked) starts with empty
    stream tables, so the bench's events are new events, and the lake the user works with is
    left as it was."""
    from ordertower.lake import connect
    from pipelines.stream.bench import measure

    source = get_settings().home
    work = get_settings().bench_dir / "live"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(source / "lake", work / "lake")
    if get_settings().catalog_kind == "sqlite":
        # the copy's catalog names its own data folder (file paths in it are relative)
        import sqlite3

        with sqlite3.connect(work / "lake" / "catalog.sqlite") as cat:
            cat.execute(
                "update ducklake_metadata set value = ? where key = 'data_path'",
                [str(work / "lake" / "data") + "/"],
            )
    for name in ("mlflow.db",):
        if (source / name).exists():
            shutil.copy2(source / name, work / name)
    (work / "landing").symlink_to(source / "landing")
    with _home(work):
        con = connect()
        try:
            for table in (
                "raw.carrier_events_stream",
                "ops.stream_batches",
                "ops.exception_alerts",
                "ops.crm_outbox",
                "ml.shipment_eta_updates",
            ):
                schema, name = table.split(".")
                if con.execute(
                    "select count(*) from information_schema.tables "
                    "where table_schema = ? and table_name = ?",
                    [schema, name],
                ).fetchone()[0]:
                    con.execute(f"delete from {table}")
            orders = con.execute("select count(*) from staging.stg_oms__orders").fetchone()[0]
            days = con.execute(
                "select count(distinct cast(ordered_at as date)) from staging.stg_oms__orders"
            ).fetchone()[0]
        finally:
            con.close()
        scale = {"orders": orders, "days": days, "eta": bench_eta()}
        scale["stream"] = measure(rate=rate, seconds=seconds)
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "scales": [scale],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"stream-{datetime.now(UTC).date().isoformat()}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    write_benchmarks_md()
    shutil.rmtree(work, ignore_errors=True)
    return path


def run_ui_bench(rounds: int = 10) -> Path:
    """``make bench-ui``: the dashboards in headless Chromium on the current lake
    (``ORDERTOWER_HOME``) -> ``bench/results/ui-<date>.json`` and BENCHMARKS.md."""
    from dashboards.bench import measure
    from ordertower.lake import connect

    con = connect(read_only=True)
    try:
        sizes = {
            name: con.execute(f"select count(*) from marts.{name}").fetchone()[0]
            for name in (
                "fct_orders",
                "fct_order_timeline",
                "fct_tracking_events",
                "fct_order_exceptions",
                "fct_order_risk",
                "fct_dispatch_shipments",
            )
        }
    finally:
        con.close()
    result = measure(rounds=rounds, log=get_settings().home / "bench_ui_streamlit.log")
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "lake": sizes,
        "ui": result,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"ui-{datetime.now(UTC).date().isoformat()}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    write_benchmarks_md()
    return path


def _ui_full_lines() -> list[str]:
    """The newest ``make bench-ui`` run (page renders and filter changes in Chromium)."""
    files = sorted(RESULTS_DIR.glob("ui-*.json"), reverse=True)
    if not files:
        return []
    data = json.loads(files[0].read_text())
    ui, lake, m = data["ui"], data["lake"], data["machine"]
    lines = [
        f"## Dashboards in a real browser ({data['date']}, `make bench-ui`, {m['cpus']} cores)",
        "",
        f"Lake: {lake['fct_orders']:,} orders, {lake['fct_order_timeline']:,} timeline rows, "
        f"{lake['fct_tracking_events']:,} carrier events, {lake['fct_order_risk']:,} risk scores, "
        f"{lake['fct_dispatch_shipments']:,} planned shipments. `streamlit run` on 127.0.0.1, "
        "Debian Chromium (headless) through Playwright; a render is timed from the click (or key)",
        "to the end of the page's script run. Target: p95 under 1 s after warm-up.",
        "Baseline (same run): the page's default view with Streamlit's caches emptied (no cached",
        "queries, the lake attached again), i.e. the app without its cached data-access module.",
        "",
        "| page | renders p50 | p95 | baseline (cold) |",
        "|---|---:|---:|---:|",
    ]
    for title, summary in ui["renders"].items():
        lines.append(
            f"| {title} | {summary['p50_s']:.2f} s | {summary['p95_s']:.2f} s | "
            f"{ui['cold_renders'].get(title, float('nan')):.2f} s |"
        )
    a = ui["renders_all"]
    lines += [
        f"| **every page** ({a['n']} renders) | {a['p50_s']:.2f} s | **{a['p95_s']:.2f} s** | |",
        "",
        "| filter change (a value not seen before: the queries run) | p50 | p95 |",
        "|---|---:|---:|",
    ]
    for name, summary in ui["filters"].items():
        lines.append(f"| {name} | {summary['p50_s']:.2f} s | {summary['p95_s']:.2f} s |")
    f = ui["filters_all"]
    d = ui["during_materialisation"]
    lines += [
        f"| **every filter change** ({f['n']}) | {f['p50_s']:.2f} s | **{f['p95_s']:.2f} s** |",
        "",
        f"While `ordertower materialize` rebuilt `{d['selection']}` in another process "
        f"(exit {d['materialise_rc']}): {d.get('n', 0)} page renders, p50 {d.get('p50_s', 0):.2f} s, "
        f"p95 {d.get('p95_s', 0):.2f} s, errors shown: {len(d['errors'])}.",
        "",
    ]
    return lines


def _live_full_lines() -> list[str]:
    """The newest ``make bench-stream`` run (the ETA model and the live path on a built lake)."""
    files = sorted(RESULTS_DIR.glob("stream-*.json"), reverse=True)
    if not files:
        return []
    data = json.loads(files[0].read_text())
    m = data["machine"]
    return [
        f"## Live path and ETA model ({data['date']}, `make bench-stream`, {m['cpus']} cores)",
        "",
        *_eta_lines(data),
        *_stream_lines(data),
    ]


def _routing_full_lines() -> list[str]:
    """The newest full Solomon run of ``make bench-routing``."""
    files = sorted(RESULTS_DIR.glob("routing-*.json"), reverse=True)
    if not files:
        return []
    data = json.loads(files[0].read_text())
    lines = [
        f"## Routing: every Solomon instance ({data['date']}, `make bench-routing`)",
        "",
        f"{data['time_limit']:g} s per instance and engine, {data['convention']}. Per-instance",
        "rows: `docs/routing.md` and the result file.",
        "",
        "| engine | instances | feasible | mean gap % | max gap % | mean s | mean vehicles |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, r in data["summary"].items():
        lines.append(
            f"| {engine} | {r['instances']} | {r['feasible']} | {r['mean_gap_pct']} | "
            f"{r['max_gap_pct']} | {r['mean_seconds']} | {r['mean_vehicles']} |"
        )
    return lines + [""]


def _risk_lines(data: dict[str, Any]) -> list[str]:
    risk_scales = [s for s in data["scales"] if "risk" in s]
    if not risk_scales:
        return []
    lines = [
        "Risk model (simulated world): point-in-time features of every order stored in the lake,",
        "LightGBM training on the matured orders (early stopping, calibration), scoring with SHAP",
        "reasons; the static rules engine (`ml/risk/rules.yaml`) is the baseline on the same test period.",
        "",
        "| orders | features | feature build s | orders/s | training orders | train s | best iteration | scoring orders/s (with reasons) | rules orders/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in risk_scales:
        r = s["risk"]
        lines.append(
            f"| {s['orders']:,} | {r['features']} | {r['feature_seconds']} | "
            f"{round(r['feature_rows'] / r['feature_seconds']):,} | {r['training_orders']:,} | "
            f"{r['train_seconds']} | {r['best_iteration']} | {r['scoring_orders_per_s']:,} | "
            f"{r['rules_orders_per_s']:,} |"
        )
    lines += [
        "",
        "| orders | test orders / frauds | | ROC-AUC | PR-AUC | recall @ 1 % FPR | accuracy | held share | legit held | legit held at the rules' recall |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in risk_scales:
        c = s["risk"]["model_vs_rules"]
        eq = c["at_equal_recall"]
        for who, m, at in (("model", c["model"], eq["a_fpr"]), ("rules", c["rules"], eq["b_fpr"])):
            lines.append(
                f"| {s['orders']:,} | {c['orders']:,} / {c['frauds']:,} | {who} | {m['roc_auc']:.4f} | "
                f"{m['pr_auc']:.4f} | {m['recall_at_1pct_fpr']:.3f} | {m['accuracy']:.4f} | "
                f"{m['held_share']:.2%} | {m['legit_intercepted_share']:.2%} | {at:.2%} |"
            )
        fewer = eq.get("a_fewer_legit_intercepted")
        lines.append(
            f"| | | **model vs rules** | | | | | | | **{fewer:.0%} fewer** at recall {eq['recall']:.1%} |"
            if fewer is not None
            else "| | | | | | | | | | |"
        )
    lines.append("")
    fs = data.get("feature_scaling")
    if fs:
        lines += [
            f"Risk features ({fs['features']}) as the orders grow: the smallest world's order facts "
            "replicated within the same period, so every entity (IP networks, devices, cards) has "
            "that many times the orders in 90 days. Baseline in the same run: the reference "
            "definition (every pair of an entity's orders in 90 days) at 1x.",
            "",
            "| factor | orders | feature build s | us per order | reference s | same features as the reference |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for r in fs["rows"]:
            same = r.get("features_equal_reference")
            lines.append(
                f"| {r['factor']}x | {r['orders']:,} | {r['seconds']} | {r['us_per_order']} | "
                f"{r.get('reference_seconds', '')} | {'' if same is None else ('yes' if same else '**no**')} |"
            )
        lines.append("")
    fd = data.get("fraud_data")
    if fd:
        lines += [
            "Real data (Fraud_Data, `ordertower risk fraud-data`):",
            "",
            "```",
            json.dumps(
                {k: v for k, v in fd.items() if k not in ("top_features",)}, indent=1, default=str
            )[:4000],
            "```",
            "",
        ]
    return lines


def _eta_lines(data: dict[str, Any]) -> list[str]:
    scales = [s for s in data["scales"] if s.get("eta")]
    if not scales:
        return []
    lines = [
        "ETA model (`ml/eta`): LightGBM on the remaining time to delivery, predicted at dispatch, at",
        "each scan and every 12 h between scans; test period = the last 15 % of delivered shipments",
        "by creation; baseline = the carrier's planned delivery (the naive ETA).",
        "",
        "| orders | segment | predictions | MAE h model | MAE h plan | within ±2 h model / plan | within ±24 h model / plan |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in scales:
        e = s["eta"]
        for seg in ("dispatch_and_scans", "dispatch", "scans", "between_scans"):
            m, p = e["model"].get(seg), e["plan"].get(seg)
            if not m or not p:
                continue
            lines.append(
                f"| {s['orders']:,} | {seg} | {m.get('examples', 0):,} | {m['mae_hours']:.2f} | "
                f"{p['mae_hours']:.2f} | {m['within_2h']:.1%} / {p['within_2h']:.1%} | "
                f"{m['within_24h']:.1%} / {p['within_24h']:.1%} |"
            )
        if e.get("live_seconds") is not None:
            lines.append(
                f"| | live scorer | {e.get('live_refs', 0)} refs | {e['live_seconds']} s | | | |"
            )
    lines.append("")
    sampled = [s for s in scales if s["eta"].get("sampling")]
    if sampled:
        lines += [
            "ETA training on a sample (`examples.max_training_shipments` in `ml/eta/policy.yaml`): the",
            "model trained on every delivered shipment and on a sample of them (by a hash of the",
            "shipment id), both measured on the same test examples (dispatch and scans).",
            "",
            "| orders | share | test examples | shipments all / sample | examples all / sample | s all / sample | MAE h all | MAE h sample |",
            "|---:|---:|---:|---|---|---|---:|---:|",
        ]
        for s in sampled:
            x = s["eta"]["sampling"]
            a, b = x["all"], x["sample"]
            lines.append(
                f"| {s['orders']:,} | {x['share']:.0%} | {x['test_examples']:,} | "
                f"{a['shipments']:,} / {b['shipments']:,} | {a['examples']:,} / {b['examples']:,} | "
                f"{a['seconds']} / {b['seconds']} | {a['mae_hours']:.2f} | {b['mae_hours']:.2f} |"
            )
        lines.append("")
    return lines


def _q(block: dict[str, Any] | None) -> str:
    if not block or not block.get("n"):
        return "- | - | -"
    return f"{block['p50_s']} | {block['p95_s']} | {block['max_s']}"


def _stream_lines(data: dict[str, Any]) -> list[str]:
    scales = [s for s in data["scales"] if s.get("stream") and "skipped" not in s["stream"]]
    if not scales:
        return []
    lines = [
        "Live stream (`pipelines/stream/bench.py`): the world's carrier events published to RabbitMQ at",
        "the target rate for a minute; `ordertower stream` (a separate process, with live ETAs, alerts,",
        "the CRM outbox and its sender) and the tracking-mart rebuild every 60 s (the stream sensor's",
        "job) share the 2 cores. Latencies from the publisher's timestamp. Baseline: the polling design",
        "(a carrier file every 15 min, then the same rebuild).",
        "",
        "| orders | rate target / achieved | events stored | duplicates | alerts | messages | consumer events/s | max ready in queue |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scales:
        st, c = s["stream"], s["stream"]["consumer"]
        lines.append(
            f"| {s['orders']:,} | {st['rate_target_per_s']:g} / {st['publish_rate_per_s']} | "
            f"{c['landed']:,} | {c['duplicates']:,} | {c['alerts']:,} | {c['messages']:,} | "
            f"{c['events_per_s']} | {c['max_queue_depth']} |"
        )
    lines += [
        "",
        "| orders | path | p50 s | p95 s | max s | goal |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for s in scales:
        st = s["stream"]
        base = st["baseline_polling"]
        for label, key, goal in (
            ("published -> stored in the lake", "published_to_stored", ""),
            ("published -> alert in the outbox", "published_to_alert_in_outbox", "p95 <= 8 s"),
            ("published -> delivered to the CRM", "published_to_crm_delivered", ""),
            (
                "published -> visible in fct_tracking_events",
                "published_to_visible_in_mart",
                "<= 300 s",
            ),
        ):
            lines.append(f"| {s['orders']:,} | {label} | {_q(st.get(key))} | {goal} |")
        lines.append(
            f"| {s['orders']:,} | baseline: file every {base['poll_minutes']:g} min -> visible | "
            f"{base['status_latency_p50_s']} | {base['status_latency_p95_s']} | | |"
        )
    lines.append("")
    return lines


# ------------------------------------------------------------------------ lake maintenance


def _week_events(first: int, n: int, shipments: int = 5) -> list[dict[str, Any]]:
    """``n`` canonical parcel events (ids ``first`` ...), as the carrier normaliser makes them."""
    from pipelines.ingest import carriers as carrier_feeds

    records = [
        {
            "msg_id": f"wk{i}",
            "event": "tracking_update",
            "carrier": "swiftparcel",
            "tracking_number": f"SPW{i // shipments}",
            "checkpoint": {
                "tag": "InTransit",
                "subtag": "InTransit_001",
                "checkpoint_time": "2026-09-01T10:00:00+02:00",
                "message": "In transit",
                "location": {"city": "Lyon", "country_iso2": "FR", "lat": 45.76, "lon": 4.84},
            },
        }
        for i in range(first, first + n)
    ]
    return carrier_feeds.normalise("parcel_webhook_json", "swiftparcel", records, "van")


def land_prevalidated(lander, events: list[dict[str, Any]], started: datetime):
    """One micro-batch through the stream's store path (the dedup query, the insert, the batch
    row, one commit), without the contract's validation: the bench measures the lake's growth,
    not Great Expectations. ``started`` is the batch's (simulated) ingestion time."""
    from pipelines.stream.land import BatchResult

    typed = pd.DataFrame.from_records(events).reindex(columns=lander._columns)
    typed["_published_at"] = started
    result = BatchResult(batch_id=os.urandom(16).hex(), received=len(events))
    con = lander.con
    con.execute("begin transaction")
    try:
        lander._store_events(typed, result, started)
        con.execute(
            "insert into ops.stream_batches values (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, ?, ?, ?, ?, ?)",
            [result.batch_id, lander.queue, result.received, result.landed, result.duplicates,
             started, started, result.max_event_at, started, started],
        )  # fmt: skip
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return result


def _dedup_seconds(con, keys: pd.DataFrame, since: datetime | None) -> float:
    """Median of three runs of the stream's duplicate look-up (windowed, or over all history)."""
    con.register("_bench_keys", keys)
    try:
        sql = (
            "select k.carrier_id, k.event_id from _bench_keys k join raw.carrier_events_stream s "
            "on s.carrier_id = k.carrier_id and s.event_id = k.event_id"
        )
        times = []
        for _ in range(3):
            t = time.perf_counter()
            if since is None:
                con.execute(sql).fetchall()
            else:
                con.execute(sql + " where s._ingested_at >= ?", [since]).fetchall()
            times.append(time.perf_counter() - t)
    finally:
        con.unregister("_bench_keys")
    return round(sorted(times)[1], 4)


def simulate_stream_week(
    home: Path,
    maintenance: bool,
    days: int = 10,
    batches_per_day: int = 72,
    events_per_batch: int = 50,
    resend_share: float = 0.1,
    light_every_hours: int = 4,
    compact_every: int = 200,
) -> list[dict[str, Any]]:
    """A compressed stream: ``days`` simulated days of micro-batches on a fresh lake at ``home``,
    each batch one commit like the consumer's (inlined, flushed every ``compact_every`` batches as
    the consumer does), a share of each batch re-sent events of the last hours. With
    ``maintenance``, a light pass every ``light_every_hours`` simulated hours and a full pass at
    each simulated midnight, with the default retention mapped onto the simulated clock. Returns
    one row per simulated day: snapshots, data files, bytes, catalog bytes, dedup query time."""
    import random
    from datetime import timedelta

    from ordertower.lake import connect
    from pipelines.maintenance import Policy, lake_stats, maintain
    from pipelines.stream.land import StreamLander, compact, dedup_window

    rng = random.Random(7)
    per_batch = timedelta(days=1) / batches_per_day
    t0 = datetime(2026, 9, 1, tzinfo=UTC)
    base = Policy.from_settings()
    curve: list[dict[str, Any]] = []
    real_at: list[float] = []  # wall-clock time of each batch's commit (snapshot times are real)
    with _home(home):
        con = connect(inline_rows=max(2 * events_per_batch, 1000))
        lander = StreamLander(con, "bench.week")
        next_id, landed, started_real = 0, 0, time.time()

        def real_policy(k: int) -> tuple[Policy, datetime]:
            """The base policy's durations as wall-clock seconds back from now, and now."""
            now = time.time()

            def back(d: timedelta) -> timedelta:
                j = k - d / per_batch
                if j < 0:
                    return timedelta(seconds=now - started_real + 1)
                return timedelta(seconds=now - real_at[int(j)])

            hour_real = (now - started_real) / max(k, 1) * (timedelta(hours=1) / per_batch)
            policy = Policy(back(base.retention), back(base.dense), back(base.grace),
                            timedelta(seconds=max(hour_real, 1e-3)))  # fmt: skip
            return policy, datetime.fromtimestamp(now, UTC)

        last_keys = pd.DataFrame(columns=["carrier_id", "event_id"])
        for k in range(days * batches_per_day):
            sim = t0 + k * per_batch
            fresh = _week_events(next_id, events_per_batch)
            next_id += events_per_batch
            resent = int(events_per_batch * resend_share)
            if resent and next_id > 4 * events_per_batch:
                lo = max(0, next_id - 12 * events_per_batch)
                fresh += _week_events(rng.randrange(lo, next_id - resent), resent)
            result = land_prevalidated(lander, fresh, sim)
            landed += result.landed
            real_at.append(time.time())
            last_keys = pd.DataFrame.from_records(fresh)[["carrier_id", "event_id"]]
            if compact_every and (k + 1) % compact_every == 0:
                compact(con)
            hour = (k + 1) * per_batch / timedelta(hours=1)
            day_end = (k + 1) % batches_per_day == 0
            if maintenance and (day_end or hour % light_every_hours == 0):
                con.close()
                policy, now = real_policy(k)
                maintain("full" if day_end else "light", policy=policy, now=now)
                con = connect(inline_rows=max(2 * events_per_batch, 1000))
                lander.con = con
            if day_end:
                stats = lake_stats(con)
                window_from = (pd.Timestamp(sim + per_batch) - dedup_window()).to_pydatetime()
                curve.append(
                    {
                        "day": (k + 1) // batches_per_day,
                        "batches": k + 1,
                        "events_landed": landed,
                        "rows": con.execute(
                            "select count(*) from raw.carrier_events_stream"
                        ).fetchone()[0],
                        **{
                            key: stats[key]
                            for key in (
                                "snapshots",
                                "data_files",
                                "live_data_files",
                                "data_bytes",
                                "inlined_rows",
                                "files_on_disk",
                                "bytes_on_disk",
                                "catalog_bytes",
                            )
                        },
                        "dedup_windowed_s": _dedup_seconds(con, last_keys, window_from),
                        "dedup_all_history_s": _dedup_seconds(con, last_keys, None),
                    }
                )
                print(f"bench-maintenance: {'with' if maintenance else 'without'} "
                      f"maintenance {json.dumps(curve[-1])}", flush=True)  # fmt: skip
        con.close()
    return curve


def run_maintenance_bench(days: int = 10, batches_per_day: int = 72) -> Path:
    """``make bench-maintenance``: a compressed stream with and without lake maintenance
    -> ``bench/results/lake-maintenance-<date>.json`` and BENCHMARKS.md."""
    settings = get_settings()
    work = settings.bench_dir / "maintenance"
    shutil.rmtree(work, ignore_errors=True)
    # a dedup window shorter than the simulated run, so the curve shows what it saves
    window_days = 3.0
    old = os.environ.get("ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS")
    os.environ["ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS"] = str(window_days)
    try:
        runs = {}
        for label, on in (("without", False), ("with", True)):
            started = time.perf_counter()
            curve = simulate_stream_week(work / label, on, days, batches_per_day)
            runs[label] = {"seconds": round(time.perf_counter() - started, 1), "curve": curve}
    finally:
        if old is None:
            os.environ.pop("ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS", None)
        else:
            os.environ["ORDERTOWER_STREAM_DEDUP_WINDOW_DAYS"] = old
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "days": days,
            "batches_per_day": batches_per_day,
            "events_per_batch": 50,
            "resend_share": 0.1,
            "light_pass_every_simulated_hours": 4,
            "full_pass": "each simulated midnight",
            "consumer_flush_every_batches": 200,
            "retention_days": settings.lake_retention_days,
            "dense_hours": settings.lake_dense_hours,
            "delete_grace_minutes": settings.lake_delete_grace_minutes,
            "dedup_window_days": window_days,
        },
        "runs": runs,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"lake-maintenance-{datetime.now(UTC).date().isoformat()}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    write_benchmarks_md()
    shutil.rmtree(work, ignore_errors=True)
    return path


def _maintenance_full_lines() -> list[str]:
    """The newest ``make bench-maintenance`` run: the lake's growth with and without upkeep."""
    files = sorted(RESULTS_DIR.glob("lake-maintenance-*.json"), reverse=True)
    if not files:
        return []
    data = json.loads(files[0].read_text())
    s, m = data["setup"], data["machine"]
    lines = [
        f"## Lake upkeep on a compressed stream ({data['date']}, `make bench-maintenance`, "
        f"{m['cpus']} cores)",
        "",
        f"{s['days']} simulated days of the stream's store path ({s['batches_per_day']} micro-"
        f"batches a day of {s['events_per_batch']} events, {s['resend_share']:.0%} re-sent; one "
        f"commit each, flushed every {s['consumer_flush_every_batches']} batches as the consumer "
        "does), on a fresh lake, without and with `pipelines.maintenance` (a light pass every "
        f"{s['light_pass_every_simulated_hours']} simulated hours, a full pass at each simulated "
        f"midnight; retention {s['retention_days']:g} days, every snapshot of the last "
        f"{s['dense_hours']:g} h, hourly before; dedup window {s['dedup_window_days']:g} days). "
        "See docs/lake.md, Lake upkeep.",
        "",
        "| day | upkeep | rows | snapshots | data files (live) | data MB | files on disk | "
        "catalog MB | dedup windowed s | dedup all history s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in ("without", "with"):
        for r in data["runs"][label]["curve"]:
            lines.append(
                f"| {r['day']} | {label} | {r['rows']:,} | {r['snapshots']:,} | "
                f"{r['data_files']:,} ({r['live_data_files']:,}) | "
                f"{r['data_bytes'] / 1e6:.2f} | {r['files_on_disk']:,} | "
                f"{(r['catalog_bytes'] or 0) / 1e6:.2f} | {r['dedup_windowed_s']} | "
                f"{r['dedup_all_history_s']} |"
            )
    lines.append("")
    return lines
