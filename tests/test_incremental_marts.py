"""The incremental marts equal a full refresh (macros/incremental.sql).

A small world is landed the way production lands it: most days first, then its last day,
then a carrier file that arrives after the world's last day with an event that happened days
earlier (late, out of order) and a re-sent copy of an event already landed. After every
landing dbt builds the lake incrementally. The marts are then compared, row for row, with a
full refresh of the same lake: the same rows, every column but refreshed_at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ordertower import lake
from pipelines.bench import daily_ingested, daily_step_seconds
from pipelines.cli import main
from tests.landing_factory import swiftparcel_webhook
from tests.shared_worlds import at_home

pytestmark = pytest.mark.slow

WORLD = ["--orders", "900", "--days", "10", "--seed", "13"]
FIRST_DAY = date(2026, 8, 20)
LAST_DAY = FIRST_DAY + timedelta(days=9)
LATE_DAY = LAST_DAY + timedelta(days=2)  # a carrier file delivered after the world's last day

INCREMENTAL = [
    "fct_shipment_legs",
    "fct_orders",
    "fct_order_timeline",
    "fct_order_exceptions",
    "kpi_daily",
    "intermediate.int_order_risk_facts",
]
#: built by the same runs (kpi_weekly sums kpi_daily; the others read the incremental marts)
COMPARED = [*INCREMENTAL, "kpi_weekly", "fct_tracking_events", "fct_order_lines"]
DBT_SELECTION = " ".join(f"+{m.split('.')[-1]}" for m in COMPARED)
#: a customer whose CRM record changes before the late run (a new loyalty tier)
UPGRADED_CUSTOMER_TIER = "platinum"


def _relation(name: str) -> str:
    """A compared model's table: the marts by their name, others with their schema."""
    return name if "." in name else f"marts.{name}"


def _build(*extra: str) -> None:
    assert main(["dbt", "run", "--select", DBT_SELECTION, *extra]) == 0


def _ingest(first: date, last: date, reference: bool = False) -> None:
    """Land a day or a range of every partitioned feed (and the reference snapshots with it)."""
    from pipelines.defs.ingest.assets import partitioned_ingest_keys

    window = first.isoformat() if first == last else f"{first.isoformat()}...{last.isoformat()}"
    selection = (
        "group:ingest"
        if reference
        else " or ".join(f"key:{k.to_user_string()}" for k in partitioned_ingest_keys)
    )
    assert main(["materialize", "--select", selection, "--partition", window]) == 0


def _query(sql: str, params: list | None = None) -> pd.DataFrame:
    con = lake.connect(read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def _query_at(home: Path, sql: str, params: list) -> int:
    with at_home(home):
        return int(_query(sql, params).iloc[0, 0])


def _snapshot(folder: Path) -> None:
    """Each compared mart as a Parquet file (every column but refreshed_at)."""
    con = lake.connect(read_only=True)
    try:
        for mart in COMPARED:
            columns = [c[0] for c in con.execute(f"describe {_relation(mart)}").fetchall()]
            select = ", ".join(c for c in columns if c != "refreshed_at")
            con.execute(
                f"copy (select {select} from {_relation(mart)}) "
                f"to '{folder / mart}.parquet' (format parquet)"
            )
    finally:
        con.close()


def _differences(con, a: str, b: str) -> list[str]:
    """How the mart in Parquet ``a`` differs from ``b``: every column but the doubles exactly,
    the doubles to 1e-9 relative (a sum over rows in another order differs in the last bits),
    row by row on the first column, each mart's key."""
    columns = con.execute(f"describe select * from {b}").fetchall()
    key = columns[0][0]
    doubles = [name for name, kind, *_ in columns if kind == "DOUBLE"]
    exact = ", ".join(name for name, *_ in columns if name not in doubles)
    found = []
    for one, other in ((a, b), (b, a)):
        rows = con.execute(f"select {exact} from {one} except all select {exact} from {other}")
        found += [f"only in {one}: {row}" for row in rows.fetchmany(3)]
    for name in doubles:
        rows = con.execute(
            f"select x.{key}, x.{name}, y.{name} from {a} as x join {b} as y using ({key}) "
            f"where not (x.{name} is not distinct from y.{name} "
            f"or abs(x.{name} - y.{name}) <= 1e-9 * greatest(1, abs(y.{name})))"
        ).fetchmany(3)
        found += [f"{name} of {row[0]}: {row[1]} vs {row[2]}" for row in rows]
    return found


def _late_and_resent_carrier_file(home: Path) -> dict:
    """A Swift Parcel file landed two days after the world: an event that happened in the middle
    of a leg (late, out of order), and a copy of an event already landed. Returns the leg, its
    events so far, the re-sent event and its mart row before the file."""
    leg = _query(
        "select tracking_ref, min(event_at) as first_at, max(event_at) as last_at, count(*) as n "
        "from marts.fct_tracking_events where carrier_id = 'swiftparcel' "
        "group by tracking_ref having count(*) >= 3 order by tracking_ref limit 1"
    ).iloc[0]
    resent = _query(
        "select event_id, tracking_ref, event_ts from raw.carrier_events "
        "where carrier_id = 'swiftparcel' order by event_id limit 1"
    ).iloc[0]
    original = _query(
        "select received_count, received_date from marts.fct_tracking_events where event_id = ?",
        [resent.event_id],
    ).iloc[0]
    happened = (leg.first_at + (leg.last_at - leg.first_at) / 2).to_pydatetime()
    folder = home / "landing" / "carriers" / "swiftparcel" / f"date={LATE_DAY.isoformat()}"
    folder.mkdir(parents=True)
    (folder / "webhooks.jsonl").write_text(
        swiftparcel_webhook(
            "msg_incremental_late", leg.tracking_ref, "Exception", "Exception_Delay", happened
        )
        + "\n"
        + swiftparcel_webhook(
            resent.event_id, resent.tracking_ref, "InTransit", "InTransit_007", resent.event_ts
        )
        + "\n",
        encoding="utf-8",
    )
    return {
        "ref": str(leg.tracking_ref),
        "events": int(leg.n),
        "resent": str(resent.event_id),
        "original": original,
    }


def _upgrade_a_customer() -> str:
    """A customer with orders moves to another loyalty tier in the CRM's snapshot (the raw
    table, as the next customer file would land it): returns the customer."""
    con = lake.connect()
    try:
        customer = con.execute(
            "select customer_key from intermediate.int_order_risk_facts "
            "where customer_tier <> ? order by customer_key limit 1",
            [UPGRADED_CUSTOMER_TIER],
        ).fetchone()[0]
        con.execute(
            "update raw.customers set tier = ? where customer_id = ?",
            [UPGRADED_CUSTOMER_TIER, customer],
        )
    finally:
        con.close()
    return customer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The world landed in three steps with an incremental build after each (the days but the
    last, the last day, a late carrier file: an increment on top of an increment), then
    snapshotted, then fully refreshed and snapshotted again."""
    home = tmp_path_factory.mktemp("incremental_world")
    snapshots = {name: tmp_path_factory.mktemp(name) for name in ("incremental", "full")}
    with at_home(home), pytest.MonkeyPatch.context() as mp:
        # the test's runs follow each other within seconds: no lookback for a writer still
        # committing (the live stream's case), or every run would re-derive everything
        mp.setenv("ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES", "0")
        assert main(["simulate", *WORLD]) == 0
        _ingest(FIRST_DAY, LAST_DAY - timedelta(days=1), reference=True)
        assert main(["dbt", "seed"]) == 0
        _build()
        _ingest(LAST_DAY, LAST_DAY)
        _build()
        runs = [_query("select max(refreshed_at) as latest from marts.fct_orders").latest[0]]
        leg = _late_and_resent_carrier_file(home)
        _ingest(LATE_DAY, LATE_DAY)
        upgraded = _upgrade_a_customer()
        _build()
        rederived = {
            mart: _query(
                f"select count(*) filter (where refreshed_at = (select max(refreshed_at) "
                f"from {_relation(mart)})) as last_run, count(*) as total, "
                f"count(distinct refreshed_at) as runs from {_relation(mart)}"
            ).iloc[0]
            for mart in INCREMENTAL
        }
        upgraded_facts = _query(
            "select customer_tier, refreshed_at = (select max(refreshed_at) "
            "from intermediate.int_order_risk_facts) as rederived "
            "from intermediate.int_order_risk_facts where customer_key = ?",
            [upgraded],
        )
        leg_events = _query(
            "select event_id, event_seq, is_out_of_order, is_late_arrival "
            "from marts.fct_tracking_events where tracking_ref = ? order by event_seq",
            [leg["ref"]],
        )
        resent_copy = _query(
            "select received_count, received_date from marts.fct_tracking_events "
            "where event_id = ?",
            [leg["resent"]],
        )
        legs_of_ref = _query(
            "select order_id, refreshed_at from marts.fct_shipment_legs where tracking_ref = ?",
            [leg["ref"]],
        )
        _snapshot(snapshots["incremental"])
        _build("--full-refresh")
        _snapshot(snapshots["full"])
        yield {
            "home": home,
            "snapshots": snapshots,
            "rederived": rederived,
            "leg": leg,
            "leg_events": leg_events,
            "resent_copy": resent_copy,
            "legs_of_ref": legs_of_ref,
            "runs": runs,
            "upgraded_facts": upgraded_facts,
        }


def test_incremental_builds_equal_a_full_refresh(built: dict):
    import duckdb

    from ordertower.lake import NO_AUTO_EXTENSIONS

    con = duckdb.connect(config=NO_AUTO_EXTENSIONS)
    inc, full = built["snapshots"]["incremental"], built["snapshots"]["full"]
    for mart in COMPARED:
        a, b = f"read_parquet('{inc / mart}.parquet')", f"read_parquet('{full / mart}.parquet')"
        rows = con.execute(f"select count(*) from {b}").fetchone()[0]
        assert rows > 0, mart
        assert con.execute(f"select count(*) from {a}").fetchone()[0] == rows, mart
        differences = _differences(con, a, b)
        assert not differences, f"{mart}: incremental and full refresh differ\n" + "\n".join(
            differences
        )


def test_each_run_rederives_only_what_changed(built: dict):
    for mart, counts in built["rederived"].items():
        # built in three runs, and the last one (the late carrier file) re-derived a part only
        assert counts.runs >= 2, f"{mart} was rebuilt whole every run"
        assert 0 < counts.last_run < counts.total, (mart, counts.last_run, counts.total)


def test_a_changed_customer_rederives_the_risk_facts_of_its_orders(built: dict):
    facts = built["upgraded_facts"]
    assert len(facts) > 0
    assert (facts.customer_tier == UPGRADED_CUSTOMER_TIER).all()
    assert facts.rederived.all()


def test_a_late_event_rederives_its_leg_and_order(built: dict):
    events = built["leg_events"]
    # the leg's events numbered 1..n+1 again, the late one placed by when it happened (before
    # the leg's last event), not last because it arrived last
    assert list(events.event_seq) == list(range(1, built["leg"]["events"] + 2))
    late = events[events.event_id == "msg_incremental_late"]
    assert len(late) == 1 and late.is_out_of_order.iloc[0] and late.is_late_arrival.iloc[0]
    assert 1 < late.event_seq.iloc[0] <= built["leg"]["events"]
    legs = built["legs_of_ref"]
    # the leg that received the late event was re-derived by the last run
    assert len(legs) == 1 and legs.refreshed_at[0] > built["runs"][-1]


def test_a_resent_event_is_kept_once_and_counted(built: dict):
    """The copy of an event landed before is not a second event: its mart row counts one more
    receipt and keeps the date of the first."""
    copy, original = built["resent_copy"], built["leg"]["original"]
    assert len(copy) == 1
    assert copy.received_count[0] == original.received_count + 1
    assert copy.received_date[0] == original.received_date


def test_the_daily_job_runs_a_day_end_to_end_and_again_without_duplicates(built: dict):
    """What the nightly schedule starts, for the world's last day (landed once already): every
    step in one run, and the re-run leaves every mart as it was."""
    import dagster as dg

    from pipelines.definitions import defs

    counts = "select (select count(*) from marts.{0}) as n"
    marts = ["fct_orders", "fct_order_timeline", "fct_tracking_events", "kpi_daily"]
    with at_home(built["home"]):
        before = {m: int(_query(counts.format(m)).n[0]) for m in marts}
        instance = dg.DagsterInstance.ephemeral()
        result = defs.resolve_job_def("daily").execute_in_process(
            partition_key=LAST_DAY.isoformat(), instance=instance, raise_on_error=False
        )
        after = {m: int(_query(counts.format(m)).n[0]) for m in marts}
        waves = _query(
            "select count(*) as n from ml.dispatch_waves where wave_date = ?", [LAST_DAY]
        ).n[0]
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failed
    done = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    # ingestion, the lake, scoring (a world this young has no champion yet: it says so and
    # scores nothing), the wave and its rounds, the ETAs, and the marts on each
    for step in (
        "ingest_orders",
        "ingest_carrier_events",
        "dbt_lake",
        "ml__order_risk_scores",
        "dispatch_plan",
        "route_plans",
        "ml__shipment_etas",
        "dbt_ml_marts",
    ):
        assert step in done, step
    assert after == before
    assert waves > 0
    # what make bench-day reads of such a run: every step's seconds, the day's records
    logs = instance.all_logs(result.run_id)
    steps = daily_step_seconds(logs)
    assert set(steps) == done and all(s >= 0 for s in steps.values())
    ingested = daily_ingested(logs, steps)
    landed = int(
        _query_at(
            built["home"],
            "select count(*) as n from raw.orders where _partition_key = ?",
            [LAST_DAY.isoformat()],
        )
    )
    assert ingested["by_dataset"]["orders"]["received"] >= landed > 0
    assert ingested["received"] == ingested["landed"] + ingested["quarantined"]


def test_a_lake_built_before_refreshed_at_upgrades_itself(built: dict):
    """A mart table without the watermark column (a lake older than the incremental marts)
    gains it on the next run, which re-derives every key, and keeps its rows."""
    with at_home(built["home"]):
        before = int(_query("select count(*) as n from marts.fct_orders").n[0])
        con = lake.connect()
        try:
            con.execute("alter table marts.fct_orders drop column refreshed_at")
        finally:
            con.close()
        assert main(["dbt", "run", "--select", "fct_orders"]) == 0
        after = _query(
            "select count(*) as n, count(refreshed_at) as stamped, "
            "count(distinct refreshed_at) as runs from marts.fct_orders"
        ).iloc[0]
    assert after.n == before and after.stamped == before and after.runs == 1


def test_a_lookback_that_is_not_whole_minutes_stops_the_build(
    built: dict, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    monkeypatch.setenv("ORDERTOWER_INCREMENTAL_LOOKBACK_MINUTES", "ten")
    with at_home(built["home"]):
        assert main(["dbt", "compile", "--select", "fct_orders"]) != 0
    out = capfd.readouterr()  # dbt runs as a child process: its output is on the descriptors
    assert "must be a whole number of minutes, not 'ten'" in out.out + out.err


STAGING_TEST = "rules_stg_oms__orders"
MART_TEST = "not_null_fct_orders"


def _dbt_test(names: list[str], capfd: pytest.CaptureFixture[str], **env: str) -> tuple[int, str]:
    from ordertower.settings import environment

    capfd.readouterr()
    with environment(env):
        rc = main(["dbt", "test", "--select", *names])
    return rc, capfd.readouterr().out


def failed(run: tuple[int, str], *tests: str) -> bool:
    """The dbt run found rows in each of ``tests`` (not an error of the run)."""
    assert run[0] == 1 and all(f"Failure in test {t}" in run[1] for t in tests), run[1][-1500:]
    return True


def passed(run: tuple[int, str], test: str) -> bool:
    out = run[1]
    assert run[0] == 0 and "PASS=1" in out and f"Failure in test {test}" not in out, out[-1500:]
    return True


def test_a_one_day_run_tests_what_it_changed_and_catches_a_bad_new_row(
    built: dict, capfd: pytest.CaptureFixture[str]
):
    """Data tests over a window read the window's staging rows and the rows the run derived
    (macros/test_scope.sql): a bad record landed in the window fails its test; one outside it
    was the business of the run that landed it; ORDERTOWER_TEST_SCOPE=all reads every row."""
    day, other = LAST_DAY.isoformat(), FIRST_DAY.isoformat()
    window = {"ORDERTOWER_EVENTS_FROM": day, "ORDERTOWER_EVENTS_TO": day}
    both = [STAGING_TEST, MART_TEST]
    with at_home(built["home"]):
        con = lake.connect()
        try:
            con.execute(
                "insert into raw.orders select * replace ('T-BAD-CHANNEL' as order_id, "
                "'telex' as channel, 900 as shipping_fee) from raw.orders "
                "where _partition_key = ? limit 1",
                [day],
            )
            # a mart row derived long ago, and one derived by a run still to come
            for order_id, refreshed in (("T-OLD", "2000-01-01"), ("T-NEW", "2999-01-01")):
                con.execute(
                    "insert into marts.fct_orders select * replace (? as order_id, "
                    "null as customer_id, cast(? as timestamptz) as refreshed_at) "
                    "from marts.fct_orders limit 1",
                    [order_id, refreshed],
                )
            outside = {"ORDERTOWER_EVENTS_FROM": other, "ORDERTOWER_EVENTS_TO": other}
            # one dbt run per scope (each run starts dbt: seconds of CI), both tests in each
            in_window = _dbt_test(both, capfd, **window)
            staged_outside = _dbt_test([STAGING_TEST], capfd, **outside)
            con.execute("delete from marts.fct_orders where order_id = 'T-NEW'")
            mart_old_only = _dbt_test([MART_TEST], capfd, **window)
            every_row = _dbt_test(both, capfd, **window, ORDERTOWER_TEST_SCOPE="all")
            bad_scope = _dbt_test([MART_TEST], capfd, **window, ORDERTOWER_TEST_SCOPE="some")
        finally:
            con.execute("delete from raw.orders where order_id = 'T-BAD-CHANNEL'")
            con.execute("delete from marts.fct_orders where order_id in ('T-OLD', 'T-NEW')")
            con.close()
    # the bad staging row is in the window, and the mart row this run derived is read
    assert failed(in_window, STAGING_TEST, MART_TEST)
    # the staging row breaks two of the model's rules (column_rules): an accepted value, an
    # expression; the mart row one required column (not_null_columns)
    assert "Got 2 results" in in_window[1] and "Got 1 result," in in_window[1], in_window[1]
    assert passed(staged_outside, STAGING_TEST)
    # a mart row from an earlier run is not read, but is by "all", as is the staging row
    assert passed(mart_old_only, MART_TEST)
    assert failed(every_row, STAGING_TEST, MART_TEST)
    assert bad_scope[0] != 0 and "ORDERTOWER_TEST_SCOPE must be 'changed' or 'all'" in bad_scope[1]
